//! Rebuild the probes when the BPF linker changes: the object's contents
//! depend on it, and cargo does not track tools outside the toolchain.

fn main() {
    match which::which("bpf-linker") {
        Ok(linker) => println!("cargo::rerun-if-changed={}", linker.display()),
        Err(err) => println!(
            "cargo::warning=bpf-linker not found ({err}); run scripts/bootstrap to install it"
        ),
    }
}

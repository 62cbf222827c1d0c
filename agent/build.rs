//! Builds the eBPF probes (`probe-ebpf`) for `bpfel-unknown-none` with the
//! nightly toolchain and bpf-linker, and copies the objects into `OUT_DIR`,
//! where `src/loader.rs` embeds them.
//!
//! `scripts/bootstrap` installs what this needs: rust-src for nightly and a
//! bpf-linker built against nightly's own libLLVM. The nested build's output
//! is shown only when it fails, so a normal build stays quiet.
//!
//! The nested build uses its own target directory (`<target>/bpf`), shared by
//! every profile of the host build, so the probes compile once.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// The probe binaries, each becoming `OUT_DIR/<name>`.
const PROBES: &[&str] = &["holonet-tc", "holonet-proc"];
const BPF_TARGET: &str = "bpfel-unknown-none";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let probe_dir = manifest_dir.join("../probe-ebpf");
    for watched in [
        "../probe-ebpf/src",
        "../probe-ebpf/Cargo.toml",
        "../probe-common/src",
    ] {
        println!("cargo::rerun-if-changed={watched}");
    }
    println!("cargo::rerun-if-env-changed=HOLONET_BPF_TOOLCHAIN");

    let target_dir = bpf_target_dir(&out_dir);
    let toolchain = env::var("HOLONET_BPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_string());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&probe_dir)
        .args([
            "run",
            &toolchain,
            "cargo",
            "build",
            "--package",
            "probe-ebpf",
            "--bins",
        ])
        .args(["--release", "--target", BPF_TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", bpf_rustflags(&arch));
    // The outer build's compiler settings must not leak into the nested
    // nightly build (clippy sets a wrapper, cargo sets RUSTC).
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(key);
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(err) => panic!(
            "could not run `rustup run {toolchain} cargo` to build the eBPF probes: {err}\n\
             hint: run scripts/bootstrap"
        ),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "building the eBPF probes failed ({}):\n{tail}\n\
             hint: run scripts/bootstrap to install rust-src for {toolchain} and bpf-linker",
            output.status
        );
    }
    for probe in PROBES {
        let built = target_dir.join(BPF_TARGET).join("release").join(probe);
        let dest = out_dir.join(probe);
        if let Err(err) = std::fs::copy(&built, &dest) {
            panic!("copying {} to {}: {err}", built.display(), dest.display());
        }
    }
}

/// The nested build's compiler flags, one per `\x1f`-separated field.
///
/// The linker emits BTF and code for the BPF v3 instruction set (32-bit
/// ALU and jumps, kernel 5.1+; holonet needs 5.17 anyway), which takes fewer
/// instructions than the default v1. It also lets LLVM expand small
/// constant-size `memset`/`memcpy` into plain stores: with bpf-linker's default
/// (`--bpf-expand-memcpy-in-order`, meant for JITs that pattern-match copies)
/// every zeroed struct became a call to a byte-at-a-time loop.
fn bpf_rustflags(arch: &str) -> String {
    [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_string(),
        "-Clink-arg=--btf".to_string(),
        "-Ctarget-cpu=v3".to_string(),
        "-Clink-arg=--disable-expand-memcpy-in-order".to_string(),
    ]
    .join("\x1f")
}

/// `<target>/bpf`, found by walking up from `OUT_DIR`
/// (`<target>/<profile>/build/<pkg>-<hash>/out`), or inside `OUT_DIR` when
/// the layout is unusual.
fn bpf_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .filter(|t| t.join("CACHEDIR.TAG").exists())
        .map_or_else(|| out_dir.join("bpf-target"), |t| t.join("bpf"))
}

//! `holonet status`'s capability probe against the running kernel: every
//! verdict must agree with what the kernel exposes, and every missing hook
//! must come with a reason.

use std::path::Path;

use holonet_agent::capabilities::{Hook, probe_all};
use holonet_tests::privileged;

#[test]
fn capabilities_agree_with_the_kernel_and_explain_what_is_missing() {
    let Some(_watchdog) = privileged("capabilities_agree_with_the_kernel") else {
        return;
    };
    let caps = probe_all();
    assert_eq!(caps.len(), Hook::ALL.len());
    let get = |hook: Hook| {
        caps.iter()
            .find(|c| c.hook == hook)
            .expect("every hook probed")
    };

    // The walking skeleton itself ran on this kernel, so these must be there.
    for hook in [Hook::TcClsact, Hook::RingBuffer] {
        assert!(get(hook).available, "{:?}", get(hook));
    }
    assert_eq!(
        get(Hook::Btf).available,
        Path::new("/sys/kernel/btf/vmlinux").exists()
    );
    let kprobe = get(Hook::Kprobe);
    if !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        assert!(!kprobe.available);
        assert!(kprobe.detail.contains("CONFIG_KPROBES"), "{kprobe:?}");
    }
    for cap in &caps {
        assert!(!cap.detail.trim().is_empty(), "{cap:?} has no explanation");
    }
}

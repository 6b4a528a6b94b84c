//! A sweep runs at constant memory: its peak RSS does not grow with the number of seeds.

use std::process::Command;

/// Peak resident set of `mqcheck ARGS` (KiB), from the kernel's accounting of that one child.
#[expect(
    clippy::zombie_processes,
    reason = "wait4 reaps the child, and gives its resource usage, which wait() does not"
)]
fn peak_rss_kib(args: &[&str]) -> i64 {
    let child = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mqcheck runs");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value, and wait4 is given valid pointers for the
    // one child this function spawned and has not waited for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    assert!(libc::WIFEXITED(status), "mqcheck exited by a signal");
    usage.ru_maxrss
}

#[test]
fn a_sweep_of_ten_thousand_seeds_needs_no_more_memory_than_one_of_a_thousand() {
    let sweep = |seeds: &str| {
        peak_rss_kib(&[
            "sim",
            "--broker",
            "zeromq",
            "--faults",
            "crash,partition",
            "--messages",
            "1",
            "--seeds",
            seeds,
        ])
    };
    let (small, large) = (sweep("1000"), sweep("10000"));
    // Runs that kept memory after they ended grew it by about 26 KiB a seed here: 230 MiB more.
    assert!(
        large < small + 16 * 1024,
        "peak RSS {small} KiB for 1,000 seeds, {large} KiB for 10,000"
    );
}

//! oneDNN's float32 precision switch (src/precision.rs) in a process that
//! links libtorch: each call runs under the precision it asked for, also
//! when calls of both precisions come from many threads at once (the switch
//! is one process-wide libtorch setting, read back here through the bridge).

use switchyard_torch::bridge;
use switchyard_torch::precision::with_precision;

#[test]
fn each_call_runs_under_the_precision_it_asked_for() {
    for want in [true, false, true, false] {
        with_precision(want, || assert_eq!(bridge::mkldnn_bf16().unwrap(), want)).unwrap();
    }
}

#[test]
fn calls_of_the_other_precision_wait_for_the_running_ones() {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let want = i % 2 == 0;
                    with_precision(want, || {
                        std::thread::yield_now();
                        assert_eq!(bridge::mkldnn_bf16().unwrap(), want)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_call_that_panics_does_not_hold_the_switch() {
    let caught = std::panic::catch_unwind(|| with_precision(true, || panic!("on purpose")));
    assert!(caught.is_err());
    // Were the panicking call still counted as running, this would wait forever.
    with_precision(false, || assert!(!bridge::mkldnn_bf16().unwrap())).unwrap();
}

//! The timing headers of a model route's answer: where the time went (queue,
//! inference, preprocessing) and which device served it. Every model route
//! sends them, so they live below the routes, not in one of them.

use std::time::Duration;

use axum::http::HeaderMap;

use super::batcher::Done;

/// `x-queue-ms`, `x-inference-ms`, `x-batch-size`, `x-device` (the device
/// that served it, `... (fallback)` for the CPU fallback), and `x-preprocess-ms` for images.
pub fn timing_headers<O>(done: &Done<O>, preprocess: Option<Duration>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    };
    put("x-queue-ms", ms(done.queue));
    put("x-inference-ms", ms(done.inference));
    put("x-batch-size", done.batch_size.to_string());
    put("x-device", done.device.to_string());
    if let Some(p) = preprocess {
        put("x-preprocess-ms", ms(p));
    }
    h
}

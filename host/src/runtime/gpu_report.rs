//! The device facts a backend reports live in its info's `extra` (written by
//! the torch companion through the libtorch bridge, keys in
//! `switchyard_core::memory`), as `/info` shows them and `/metrics` exports
//! them: memory per device, the allocator cache released after idle
//! unloads, and the CUDA switches in effect. The run metadata of
//! `switchyard embed` has the memory figures too ([`memory`]).

use std::fmt::Write;

use serde_json::{json, Value};
use switchyard_core::abi::KeyValues;
use switchyard_core::memory::{
    device_memory, DeviceMemory, MemoryKind, MEMORY_ERROR_KEY, RELEASED_BYTES_KEY, RELEASES_KEY, SETTING_KEYS,
};

fn pairs(extra: &KeyValues) -> impl Iterator<Item = (&str, &str)> {
    extra.iter().map(|kv| (kv.0.as_str(), kv.1.as_str()))
}

fn value<'a>(extra: &'a KeyValues, key: &str) -> Option<&'a str> {
    pairs(extra).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// The memory figures per device in a backend's info.
pub fn memory(extra: &KeyValues) -> Vec<DeviceMemory> {
    device_memory(pairs(extra))
}

/// `/info`'s `device_memory`, `device_memory_error`, `allocator_cache` and
/// `cuda_settings` (each null where the backend reports none: the CPU).
pub fn info_fields(extra: &KeyValues) -> [(&'static str, Value); 4] {
    let number = |key| value(extra, key).and_then(|v| v.parse::<u64>().ok());
    let cache = match (number(RELEASES_KEY), number(RELEASED_BYTES_KEY)) {
        (Some(releases), Some(bytes)) => json!({
            "releases": releases,
            "released_bytes": bytes,
            "last_error": value(extra, "allocator_cache_release_error"),
        }),
        _ => Value::Null,
    };
    let settings: serde_json::Map<String, Value> =
        SETTING_KEYS.iter().filter_map(|k| value(extra, k).map(|v| (k.to_string(), json!(v == "true")))).collect();
    [
        ("device_memory", json!(memory(extra))),
        ("device_memory_error", json!(value(extra, MEMORY_ERROR_KEY))),
        ("allocator_cache", cache),
        ("cuda_settings", if settings.is_empty() { Value::Null } else { Value::Object(settings) }),
    ]
}

/// `switchyard_device_memory_bytes{device, kind}`: one gauge per figure the
/// backend has (no peak on MPS). The family is always declared, with no
/// series on the CPU, so that every server exposes the same families.
pub fn render_metrics(out: &mut String, figures: &[DeviceMemory]) {
    let _ = writeln!(
        out,
        "# HELP switchyard_device_memory_bytes libtorch's device allocator: allocated (live tensors), reserved (allocated plus cache), peak (most allocated since the last unload).\n# TYPE switchyard_device_memory_bytes gauge"
    );
    for d in figures {
        for kind in MemoryKind::ALL {
            if let Some(bytes) = d.get(kind) {
                let device = d.device.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(
                    out,
                    "switchyard_device_memory_bytes{{device=\"{device}\",kind=\"{}\"}} {bytes}",
                    kind.as_str()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::abi::kv;

    fn cuda_extra() -> KeyValues {
        kv([
            ("torch_dtype", "F32"),
            ("device_memory.cuda:0.allocated", "1000"),
            ("device_memory.cuda:0.reserved", "4096"),
            ("device_memory.cuda:0.peak", "2000"),
            ("allocator_cache_releases", "2"),
            ("allocator_cache_released_bytes", "8192"),
            ("cuda_tf32_matmul", "false"),
            ("cuda_tf32_cudnn", "false"),
            ("cudnn_benchmark", "true"),
        ])
    }

    #[test]
    fn metrics_have_one_gauge_per_figure() {
        let mut out = String::new();
        render_metrics(&mut out, &memory(&cuda_extra()));
        assert!(out.contains("# TYPE switchyard_device_memory_bytes gauge\n"), "{out}");
        assert!(out.contains("switchyard_device_memory_bytes{device=\"cuda:0\",kind=\"allocated\"} 1000\n"), "{out}");
        assert!(out.contains("switchyard_device_memory_bytes{device=\"cuda:0\",kind=\"reserved\"} 4096\n"), "{out}");
        assert!(out.contains("switchyard_device_memory_bytes{device=\"cuda:0\",kind=\"peak\"} 2000\n"), "{out}");
        let mps = memory(&kv([("device_memory.mps.allocated", "5"), ("device_memory.mps.reserved", "9")]));
        let mut out = String::new();
        render_metrics(&mut out, &mps);
        assert_eq!(out.matches("switchyard_device_memory_bytes{").count(), 2, "no peak on MPS: {out}");
        let mut out = String::new();
        render_metrics(&mut out, &memory(&kv([("torch_dtype", "F32")])));
        assert!(out.contains("# TYPE switchyard_device_memory_bytes gauge\n"), "declared on the CPU too: {out}");
        assert!(!out.contains("switchyard_device_memory_bytes{"), "but with no series: {out}");
    }

    #[test]
    fn info_fields_read_back_what_the_companion_wrote() {
        let fields: serde_json::Map<String, Value> =
            info_fields(&cuda_extra()).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(
            fields["device_memory"],
            json!([{"device": "cuda:0", "allocated_bytes": 1000, "reserved_bytes": 4096, "peak_bytes": 2000}])
        );
        assert_eq!(fields["allocator_cache"], json!({"releases": 2, "released_bytes": 8192, "last_error": null}));
        assert_eq!(
            fields["cuda_settings"],
            json!({"cuda_tf32_matmul": false, "cuda_tf32_cudnn": false, "cudnn_benchmark": true})
        );
        let cpu = info_fields(&kv([("torch_dtype", "F32")]));
        assert_eq!(
            cpu.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            vec![json!([]), Value::Null, Value::Null, Value::Null]
        );
    }
}

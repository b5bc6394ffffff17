//! PBM, PGM and PPM (the walker lists `.pbm/.pgm/.ppm/.pnm`): decoded as
//! Pillow decodes them, byte for byte against `Image.open(f).convert("RGB")`
//! on files of every kind Pillow reads (tools/reference/pnm_reference.py),
//! and embedded by `switchyard embed` instead of becoming error lines.

use std::process::Command;

use serde_json::Value;
use switchyard::image::{decode_rgb, DecodeError, DecodeLimits};
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, plugin_folder, root, switchyard_bin, temp_dir, venv_python};

fn reference() -> (std::path::PathBuf, Vec<Value>) {
    let dir = temp_dir("pnm");
    let out = Command::new(venv_python())
        .arg(root().join("tools/reference/pnm_reference.py"))
        .arg(&dir)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    (dir, manifest)
}

#[test]
fn every_netpbm_kind_pillow_reads_decodes_to_pillows_pixels() {
    let (dir, manifest) = reference();
    assert!(manifest.len() >= 10, "{manifest:?}");
    for entry in &manifest {
        let name = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let img = decode_rgb(&bytes, &DecodeLimits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (img.width() as u64, img.height() as u64),
            (entry["width"].as_u64().unwrap(), entry["height"].as_u64().unwrap()),
            "{name}"
        );
        let want = std::fs::read(dir.join(format!("{name}.rgb"))).unwrap();
        assert_eq!(img.pixels(), &want[..], "{name} (Pillow mode {}): pixels differ from Pillow's", entry["pil_mode"]);
    }
}

#[test]
fn pam_which_pillow_cannot_read_is_an_unsupported_format() {
    let pam = b"P7\nWIDTH 2\nHEIGHT 1\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n\x01\x02\x03\x04\x05\x06";
    let e = decode_rgb(pam, &DecodeLimits::default()).unwrap_err();
    assert!(matches!(e, DecodeError::UnsupportedFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("PAM"), "{e}");
}

#[test]
fn a_netpbm_bomb_is_refused_from_its_header() {
    let bomb = b"P5\n100000 100000\n255\n\x00\x00";
    let e = decode_rgb(bomb, &DecodeLimits { max_pixels: 1 << 20 }).unwrap_err();
    assert!(matches!(e, DecodeError::TooManyPixels { .. }), "{e:?}");
}

#[test]
fn embed_takes_a_folder_of_netpbm_files() {
    let (dir, manifest) = reference();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let keep =
            entry.path().extension().is_some_and(|e| ["pbm", "pgm", "ppm", "pnm"].contains(&e.to_str().unwrap()));
        if !keep {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let plugins = plugin_folder("pnm-plugins", &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))]);
    let o = Command::new(switchyard_bin())
        .arg("embed")
        .arg(&dir)
        .args(["--quiet", "--plugin-dir"])
        .arg(&plugins)
        .arg("--model-dir")
        .arg(root().join("models"))
        .env_remove("DEVICE")
        .env_remove("FORCE_CPU")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let lines: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), manifest.len(), "{stderr}");
    assert!(lines.iter().all(|l| l["embedding"].as_array().is_some_and(|e| e.len() == 512)), "{lines:?}");
}

//! CLIP image preprocessing against the real Python code: the host's
//! `decode_rgb` + `preprocess` must give open_clip's preprocess tensor (PIL
//! decode, `convert("RGB")`, torchvision Resize/CenterCrop, ToTensor,
//! Normalize) within 1e-3 on every image, and bad input must come back as the
//! right `DecodeError` without a panic.
//!
//! The images and reference tensors are made at test time by
//! `tools/reference/make_parity_images.py` and `tools/reference/clip_preprocess.py`
//! with the project's virtualenv, into `target/parity/` (ignored by git).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use switchyard::clip::preprocess::{preprocess, resize_and_crop, PreprocessConfig};
use switchyard::image::{decode_rgb, DecodeError, DecodeLimits};
use switchyard_tests::{read_f32, root, run_python};

const TOLERANCE: f32 = 1e-3;

fn base() -> PathBuf {
    root().join("target/parity/clip-preprocess")
}

/// The parity images, made once per test run by `make_parity_images.py`.
fn parity_images() -> &'static [PathBuf] {
    static IMAGES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let images = base().join("images");
        let _ = std::fs::remove_dir_all(&images);
        run_python(&[Path::new("-P"), &root().join("tools/reference/make_parity_images.py"), &images]);
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&images).expect("parity images folder").map(|e| e.expect("dir entry").path()).collect();
        files.sort();
        files
    })
}

/// Runs open_clip's preprocess (`mode`, `interpolation`) on the parity images (or the named ones).
fn reference(mode: &str, interpolation: &str, only: Option<&[&str]>) -> (PathBuf, serde_json::Value) {
    let tool = root().join("tools/reference");
    let files = parity_images()
        .iter()
        .filter(|p| only.is_none_or(|names| names.iter().any(|n| p.file_name().is_some_and(|f| f == *n))))
        .cloned();
    let refs = base().join(format!("ref-{mode}-{interpolation}"));
    let _ = std::fs::remove_dir_all(&refs);
    let mut args: Vec<PathBuf> = vec![tool.join("clip_preprocess.py"), refs.clone()];
    args.extend(files);
    for flag in ["--resize-mode", mode, "--interpolation", interpolation] {
        args.push(flag.into());
    }
    run_python(&[Path::new("-P")].into_iter().chain(args.iter().map(PathBuf::as_path)).collect::<Vec<_>>());
    let manifest = std::fs::read_to_string(refs.join("manifest.json")).expect("manifest.json");
    (refs, serde_json::from_str(&manifest).expect("manifest is JSON"))
}

/// Compares every image of a reference run; returns how many were checked.
fn check_all(refs: &Path, manifest: &serde_json::Value) -> usize {
    let cfg: PreprocessConfig = serde_json::from_value(manifest["config"].clone()).expect("config parses");
    let images = manifest["images"].as_array().expect("images");
    let mut failures = Vec::new();
    println!(
        "{:<40} {:>11} {:>12} {:>10} {:>10} {:>10}",
        "image", "size", "rgb max|d|", "max|d|", "decode ms", "prep ms"
    );
    for entry in images {
        let stem = entry["stem"].as_str().unwrap();
        let bytes = std::fs::read(entry["path"].as_str().unwrap()).unwrap();
        let t0 = Instant::now();
        let rgb = decode_rgb(&bytes, &DecodeLimits::default()).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (w, h) = (entry["width"].as_u64().unwrap() as u32, entry["height"].as_u64().unwrap() as u32);
        assert_eq!((rgb.width(), rgb.height()), (w, h), "{stem}: decoded size");
        let want_rgb = std::fs::read(refs.join(entry["rgb"].as_str().unwrap())).unwrap();
        let rgb_diff = rgb.pixels().iter().zip(&want_rgb).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);

        let t0 = Instant::now();
        let got = preprocess(&rgb, &cfg);
        let prep_ms = t0.elapsed().as_secs_f64() * 1e3;
        let want = read_f32(&refs.join(entry["tensor"].as_str().unwrap()));
        assert_eq!(got.len(), want.len(), "{stem}: tensor length");
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let cropped = resize_and_crop(&rgb, &cfg);
        assert_eq!((cropped.width(), cropped.height()), (cfg.image_size, cfg.image_size));
        println!(
            "{stem:<40} {:>11} {rgb_diff:>12} {diff:>10.2e} {decode_ms:>10.1} {prep_ms:>10.1}",
            format!("{w}x{h}")
        );
        if diff > TOLERANCE || diff.is_nan() {
            failures.push(format!("{stem}: max |diff| {diff:e} (decoded RGB max |diff| {rgb_diff})"));
        }
    }
    assert!(failures.is_empty(), "over the {TOLERANCE} bar:\n{}", failures.join("\n"));
    images.len()
}

#[test]
fn preprocess_matches_open_clip_on_real_images() {
    let (refs, manifest) = reference("shortest", "bicubic", None);
    assert!(manifest["transform"].as_str().unwrap().contains("Resize(size=224, interpolation=bicubic"));
    let n = check_all(&refs, &manifest);
    assert!(n >= 20, "only {n} parity images; the bar is 20");
}

#[test]
fn other_resize_modes_match_open_clip() {
    let some: &[&str] = &["orig_rocket.jpg", "crop_458x448.png", "size_wide_2000x150.png", "size_3x7.png"];
    for (mode, interp) in [("longest", "bicubic"), ("squash", "bilinear"), ("shortest", "bilinear")] {
        println!("resize_mode={mode} interpolation={interp}");
        let (refs, manifest) = reference(mode, interp, Some(some));
        assert_eq!(check_all(&refs, &manifest), some.len(), "{mode}/{interp}");
    }
}

// ---- bad input -------------------------------------------------------------

fn parity_file(name: &str) -> Vec<u8> {
    let path = parity_images().iter().find(|p| p.file_name().is_some_and(|f| f == name)).expect("parity image");
    std::fs::read(path).expect("read parity image")
}

fn decode(bytes: &[u8]) -> Result<switchyard::image::RgbImage, DecodeError> {
    decode_rgb(bytes, &DecodeLimits::default())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A real PNG whose IHDR claims `width` x `height` (CRC fixed, so only the size is wrong).
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut png = parity_file("size_17x9.png");
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// A real JPEG whose SOF claims `width` x `height`.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut jpg = parity_file("orig_rocket.jpg");
    let sof = (2..jpg.len() - 1).find(|&i| jpg[i] == 0xFF && matches!(jpg[i + 1], 0xC0..=0xC2)).expect("SOF");
    jpg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpg
}

#[test]
fn empty_input_is_empty() {
    let e = decode(&[]).unwrap_err();
    assert!(matches!(e, DecodeError::Empty), "{e:?}");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn a_text_file_is_not_an_image() {
    let e = decode(b"name,width,height\nastronaut,512,512\n").unwrap_err();
    assert!(matches!(e, DecodeError::NotAnImage { ref magic } if magic.starts_with("6e 61 6d 65")), "{e:?}");
    assert!(e.to_string().contains("JPEG, PNG, WebP"), "the message names what to send: {e}");
}

#[test]
fn known_but_unsupported_formats_say_so() {
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    let e = decode(heic).unwrap_err();
    assert!(matches!(e, DecodeError::UnsupportedFormat { .. }), "{e:?}");
    let qoi = b"qoif\0\0\0\x01\0\0\0\x01\x03\x00";
    assert!(matches!(decode(qoi).unwrap_err(), DecodeError::UnsupportedFormat { .. }));
}

#[test]
fn truncated_files_are_corrupt() {
    for name in [
        "orig_rocket.jpg",
        "jpeg_astronaut_q85_progressive.jpg",
        "orig_astronaut.png",
        "gif_chelsea.gif",
        "webp_coffee_lossy.webp",
        "tiff_coffee_lzw.tif",
        "bmp_rocket.bmp",
    ] {
        let bytes = parity_file(name);
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10, 40] {
            let e = decode(&bytes[..cut]).expect_err(&format!("{name} cut at {cut} decoded"));
            assert!(matches!(e, DecodeError::Corrupt { .. }), "{name} cut at {cut}: {e:?}");
            assert!(e.to_string().contains("corrupt or truncated"), "{e}");
        }
    }
}

#[test]
fn corrupt_headers_are_corrupt() {
    // A JPEG frame header with 7-bit samples: libjpeg refuses it (error_exit unwinds, caught).
    let mut jpg = parity_file("orig_rocket.jpg");
    let sof = (2..jpg.len() - 1).find(|&i| jpg[i] == 0xFF && jpg[i + 1] == 0xC0).expect("SOF0");
    jpg[sof + 4] = 7;
    let e = decode(&jpg).unwrap_err();
    assert!(matches!(e, DecodeError::Corrupt { ref detail, .. } if detail.contains("precision")), "{e:?}");
    let mut png = parity_file("orig_astronaut.png");
    let idat = png.windows(4).position(|w| w == b"IDAT").expect("IDAT");
    png[idat + 20..idat + 60].fill(0x5A);
    let e = decode(&png).unwrap_err();
    assert!(matches!(e, DecodeError::Corrupt { .. }), "{e:?}");
}

#[test]
fn random_corruption_never_panics() {
    // Flip bytes all over real files of every format: each decode must return, Ok or a DecodeError.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for name in [
        "orig_mask_green_small.jpg",
        "jpeg_astronaut_cmyk.jpg",
        "size_17x9.png",
        "png_chelsea_palette_trns.png",
        "gif_chelsea.gif",
        "webp_coffee_lossy.webp",
        "webp_chelsea_lossless.webp",
        "tiff_coffee_lzw.tif",
        "bmp_rocket.bmp",
        "jpeg_camera_gray.jpg",
    ] {
        let original = parity_file(name);
        for _ in 0..40 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 8 {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
            if next() % 4 == 0 {
                bytes.truncate((next() % bytes.len() as u64) as usize);
            }
            let _ = decode(&bytes);
        }
    }
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let bombs = [
        (png_claiming(100_000, 100_000), 100_000u32, 100_000u32),
        (png_claiming(1 << 20, 1 << 20), 1 << 20, 1 << 20),
        (jpeg_claiming(65_000, 65_000), 65_000, 65_000),
    ];
    let started = std::time::Instant::now();
    for (bytes, w, h) in bombs {
        match decode(&bytes).unwrap_err() {
            DecodeError::TooManyPixels { width, height, pixels, max_pixels, .. } => {
                assert_eq!((width, height), (w, h));
                assert_eq!(pixels, u64::from(w) * u64::from(h));
                assert_eq!(max_pixels, switchyard::image::decode::DEFAULT_MAX_PIXELS);
            }
            e => panic!("{w}x{h}: {e:?}"),
        }
    }
    let took = started.elapsed().as_secs_f64();
    assert!(took < 0.5, "the limit must be checked before decoding; took {took} s");
    // The limit is configurable; at exactly the limit the image decodes.
    let small = DecodeLimits { max_pixels: 640 * 427 - 1 };
    let e = decode_rgb(&parity_file("orig_rocket.jpg"), &small).unwrap_err();
    assert!(e.to_string().contains("640x427 = 273280 pixels, over the limit of 273279"), "{e}");
    decode_rgb(&parity_file("orig_rocket.jpg"), &DecodeLimits { max_pixels: 640 * 427 }).expect("at the limit");
}

#[test]
fn zero_size_images_are_refused() {
    let mut gif = parity_file("gif_chelsea.gif");
    gif[6..10].fill(0);
    let mut bmp = parity_file("bmp_rocket.bmp");
    bmp[18..22].fill(0);
    for (bytes, what) in
        [(png_claiming(0, 9), "png 0x9"), (jpeg_claiming(0, 427), "jpeg 0x427"), (gif, "gif"), (bmp, "bmp")]
    {
        let e = decode(&bytes).unwrap_err();
        assert!(matches!(e, DecodeError::ZeroSize { .. }), "{what}: {e:?}");
        assert!(e.to_string().contains("which has no pixels"), "{e}");
    }
}

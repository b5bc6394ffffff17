//! The inputs on which a fuzz target (fuzz/, ci/fuzz.sh) once failed, kept
//! small in `fuzz/regressions/<target>/`, each replayed here with what the
//! fixed code must now do. The fuzz crate's own replay
//! (fuzz/tests/replay.rs, in ci/test.sh) runs them through their targets'
//! invariants, and ci/fuzz.sh feeds them to the fuzzer first.

use switchyard::clip::preprocess::{preprocess, PreprocessConfig};
use switchyard::image::{decode_rgb, DecodeError, DecodeLimits};
use switchyard::server::error::ApiError;
use switchyard_tests::root;

/// The pixel limit of the decode_preprocess target.
const FUZZ_LIMITS: DecodeLimits = DecodeLimits { max_pixels: 1 << 20 };

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = root().join("fuzz/regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A TIFF (4096 x 2122219134 in its tags) that the `image` crate refuses with a
/// limits error before it reports a size: that was "the TIFF image is 0x0 = 0
/// pixels, over the limit", a size error without a size.
#[test]
fn a_tiff_over_the_decoders_limits_is_not_a_0x0_pixel_bomb() {
    let bytes = regression("decode_preprocess", "tiff-limits-error-before-size.tiff");
    for limits in [FUZZ_LIMITS, DecodeLimits::default()] {
        let e = decode_rgb(&bytes, &limits).unwrap_err();
        assert!(matches!(e, DecodeError::Corrupt { .. }), "{e:?}");
        let message = e.to_string();
        assert!(message.contains("more memory than the decoder's limits allow"), "{message}");
        assert!(!message.contains("0x0"), "{message}");
        assert_eq!(ApiError::from_decode(0, e).status().as_u16(), 422);
    }
}

/// A 406-byte PNG of 1 x 20000 pixels whose trailing byte asks the target for a
/// shortest-side resize to 224 (made by hand after reading the code; the
/// target stopped on it out of memory): resizing in full before the centre
/// crop allocated 224 x 4,480,000 pixels (3 GB); within the server's default
/// pixel limit a 1 x 89M strip would ask for terabytes and abort the process.
#[test]
fn a_long_strip_is_preprocessed_without_resizing_it_in_full() {
    let bytes = regression("decode_preprocess", "png-1x20000-strip-shortest-224.png");
    let img = decode_rgb(&bytes, &FUZZ_LIMITS).expect("a valid PNG");
    assert_eq!((img.width(), img.height()), (1, 20_000));
    let started = std::time::Instant::now();
    let out = preprocess(&img, &PreprocessConfig::openai(224));
    assert_eq!(out.len(), 3 * 224 * 224);
    assert!(out.iter().all(|v| v.is_finite()));
    let took = started.elapsed().as_secs_f64();
    assert!(took < 1.0, "a 224x224 window took {took} s");
}

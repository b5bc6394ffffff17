//! The inputs on which a fuzz target (fuzz/, ci/fuzz.sh) once failed, kept
//! small in `fuzz/regressions/<target>/`, each replayed here with what the
//! fixed code must now do. ci/fuzz.sh also feeds them to the targets.

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

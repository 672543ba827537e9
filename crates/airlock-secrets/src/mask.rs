//! Screenshot masking: black boxes over the regions where a secret is shown, applied to the
//! PNG before it is stored or sent to a model.
//!
//! This module owns the pixels only. Which regions to mask (elements whose value or text
//! contains a secret, per [`crate::Redactor::contains_secret`]) and the mapping from CSS
//! pixels to image pixels belong to the caller. Rectangles are rounded *outward* and clamped,
//! so a fractional box never leaves a sliver of glyph visible. The output is re-encoded from
//! the decoded pixels: only the first frame of an animated PNG and none of the source's
//! metadata chunks (`tEXt` and the like) survive, so nothing but the masked image leaves.

use std::io::Cursor;

/// A rectangle in image pixels. Fractional edges are rounded outward; negative sizes mean the
/// rectangle extends left/up from `x`/`y`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Rect {
    pub fn new(x: f64, y: f64, width: f64, height: f64) -> Self {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// `[x0, x1) × [y0, y1)` in whole pixels, clamped to `width × height`; `None` if a
    /// coordinate is NaN.
    fn pixel_bounds(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let span = |start: f64, len: f64, limit: u32| -> Option<(u32, u32)> {
            let end = start + len;
            if start.is_nan() || end.is_nan() {
                return None;
            }
            let (lo, hi) = if end < start {
                (end, start)
            } else {
                (start, end)
            };
            let limit_f = f64::from(limit);
            // `as` saturates and the values are clamped to [0, limit] first.
            let lo = lo.floor().clamp(0.0, limit_f) as u32;
            let hi = hi.ceil().clamp(0.0, limit_f) as u32;
            Some((lo, hi))
        };
        let (x0, x1) = span(self.x, self.width, width)?;
        let (y0, y1) = span(self.y, self.height, height)?;
        Some((x0, x1, y0, y1))
    }
}

/// Why a screenshot could not be masked. The caller must then not store or send it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaskError {
    #[error("screenshot is not a PNG the masker can read: {0}")]
    Decode(String),
    #[error("screenshot of {width}x{height} pixels is larger than the masker accepts")]
    TooLarge { width: u32, height: u32 },
    #[error("mask rectangle {index} has a NaN coordinate")]
    InvalidRect { index: usize },
    #[error("masked screenshot could not be encoded: {0}")]
    Encode(String),
}

/// The largest decoded image accepted: 16384 × 8192 RGBA.
const MAX_DECODED_BYTES: usize = 512 * 1024 * 1024;

/// Decodes `png`, fills each of `rects` (clamped to the image) with opaque black, and re-encodes.
pub fn mask_png(png: &[u8], rects: &[Rect]) -> Result<Vec<u8>, MaskError> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(png),
        png::Limits {
            bytes: MAX_DECODED_BYTES,
        },
    );
    // Palette, low bit depths and tRNS expand to 8-bit gray/RGB(A); 16-bit is stripped to 8.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.set_ignore_text_chunk(true);
    let mut reader = decoder
        .read_info()
        .map_err(|e| MaskError::Decode(e.to_string()))?;
    let (width, height) = reader.info().size();
    let size = reader
        .output_buffer_size()
        .filter(|&n| n <= MAX_DECODED_BYTES)
        .ok_or(MaskError::TooLarge { width, height })?;
    let mut pixels = vec![0u8; size];
    let frame = reader
        .next_frame(&mut pixels)
        .map_err(|e| MaskError::Decode(e.to_string()))?;
    pixels.truncate(frame.buffer_size());
    let (color, depth) = (frame.color_type, frame.bit_depth);
    if depth != png::BitDepth::Eight {
        return Err(MaskError::Decode(format!(
            "unexpected bit depth {depth:?} after normalisation"
        )));
    }
    let (channels, alpha) = match color {
        png::ColorType::Grayscale => (1, false),
        png::ColorType::GrayscaleAlpha => (2, true),
        png::ColorType::Rgb => (3, false),
        png::ColorType::Rgba => (4, true),
        png::ColorType::Indexed => {
            return Err(MaskError::Decode(
                "palette image was not expanded".to_string(),
            ))
        }
    };
    let stride = frame.line_size;
    let black: &[u8] = match (channels, alpha) {
        (2, true) => &[0, 255],
        (4, true) => &[0, 0, 0, 255],
        (3, _) => &[0, 0, 0],
        _ => &[0],
    };

    for (index, rect) in rects.iter().enumerate() {
        let (x0, x1, y0, y1) = rect
            .pixel_bounds(frame.width, frame.height)
            .ok_or(MaskError::InvalidRect { index })?;
        if x0 >= x1 || y0 >= y1 {
            continue;
        }
        let (x0, x1) = (x0 as usize * channels, x1 as usize * channels);
        for y in y0 as usize..y1 as usize {
            let row_start = y * stride;
            if let Some(span) = pixels.get_mut(row_start + x0..row_start + x1) {
                for px in span.chunks_exact_mut(channels) {
                    px.copy_from_slice(black);
                }
            }
        }
    }

    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| MaskError::Encode(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| MaskError::Encode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| MaskError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rects_round_outward_and_clamp() {
        let b = |x, y, w, h| Rect::new(x, y, w, h).pixel_bounds(10, 8);
        assert_eq!(b(1.2, 2.7, 3.1, 1.0), Some((1, 5, 2, 4)));
        assert_eq!(b(-5.0, -5.0, 100.0, 100.0), Some((0, 10, 0, 8)));
        assert_eq!(b(4.0, 4.0, -2.0, -2.0), Some((2, 4, 2, 4)));
        assert_eq!(
            b(f64::NEG_INFINITY, 0.0, 5.0, f64::INFINITY),
            Some((0, 0, 0, 8))
        );
        assert_eq!(b(f64::NAN, 0.0, 1.0, 1.0), None);
        assert_eq!(b(20.0, 20.0, 5.0, 5.0), Some((10, 10, 8, 8)));
    }
}

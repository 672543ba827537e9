//! Screenshot scaling to each vendor's image limits.
//!
//! A model's coordinates refer to the image it was sent, so the adapter decides the size here,
//! downscales the PNG (area averaging, never upscaling), and parses the reply in a
//! [`CoordSpace::Screenshot`] of exactly that size.
//!
//! [`CoordSpace::Screenshot`]: airlock_core::coords::CoordSpace::Screenshot

use std::io::Cursor;

/// The largest decoded screenshot accepted (16384 × 4096 RGBA).
const MAX_DECODED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    #[error("the screenshot is not a PNG Airlock can read: {0}")]
    Decode(String),
    #[error("the {width}x{height} screenshot is larger than Airlock scales")]
    TooLarge { width: u32, height: u32 },
    #[error("the scaled screenshot could not be encoded: {0}")]
    Encode(String),
}

/// What a vendor accepts. Every bound is optional; the tightest one wins.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ImageLimits {
    /// Longest edge in pixels.
    pub max_long_edge: Option<u32>,
    /// Total pixels.
    pub max_pixels: Option<u64>,
    /// `(tile, max)`: at most `max` tiles of `tile`×`tile` pixels, counted as
    /// `ceil(w/tile)*ceil(h/tile)` (Anthropic's visual tokens).
    pub max_tiles: Option<(u32, u64)>,
    /// A box the image must fit in, `(width, height)` (an operator's choice).
    pub fit_box: Option<(u32, u32)>,
}

impl ImageLimits {
    /// The same limits, also fitting `fit_box` when given.
    pub fn with_box(mut self, fit_box: Option<(u32, u32)>) -> Self {
        if fit_box.is_some() {
            self.fit_box = fit_box;
        }
        self
    }

    fn ok(&self, w: u32, h: u32) -> bool {
        let long = w.max(h);
        self.max_long_edge.is_none_or(|m| long <= m)
            && self
                .max_pixels
                .is_none_or(|m| u64::from(w) * u64::from(h) <= m)
            && self.max_tiles.is_none_or(|(t, m)| {
                let t = t.max(1);
                u64::from(w.div_ceil(t)) * u64::from(h.div_ceil(t)) <= m
            })
            && self.fit_box.is_none_or(|(bw, bh)| w <= bw && h <= bh)
    }

    /// The largest size within the limits with the aspect ratio of `width`×`height`, never
    /// larger than the original.
    pub fn fit(&self, width: u32, height: u32) -> (u32, u32) {
        let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
        let mut scale: f64 = 1.0;
        if let Some(m) = self.max_long_edge {
            scale = scale.min(f64::from(m.max(1)) / w.max(h));
        }
        if let Some(m) = self.max_pixels {
            scale = scale.min((m.max(1) as f64 / (w * h)).sqrt());
        }
        if let Some((bw, bh)) = self.fit_box {
            scale = scale
                .min(f64::from(bw.max(1)) / w)
                .min(f64::from(bh.max(1)) / h);
        }
        let size = |s: f64| {
            (
                ((w * s).floor() as u32).clamp(1, width.max(1)),
                ((h * s).floor() as u32).clamp(1, height.max(1)),
            )
        };
        let (mut tw, mut th) = size(scale);
        // Tile counts are not smooth in the scale; step down until everything holds.
        let mut guard = 0;
        while !self.ok(tw, th) && guard < 2000 && (tw > 1 || th > 1) {
            scale *= 0.995;
            (tw, th) = size(scale);
            guard += 1;
        }
        (tw, th)
    }
}

/// A decoded 8-bit image: `channels` bytes per pixel, rows packed.
struct Pixels {
    width: u32,
    height: u32,
    channels: usize,
    color: png::ColorType,
    data: Vec<u8>,
}

/// The width and height in the PNG header.
pub fn png_size(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    let decoder = png::Decoder::new(Cursor::new(bytes));
    let reader = decoder
        .read_info()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    Ok(reader.info().size())
}

fn decode(bytes: &[u8]) -> Result<Pixels, ImageError> {
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: MAX_DECODED_BYTES,
        },
    );
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.set_ignore_text_chunk(true);
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let (width, height) = reader.info().size();
    let size = reader
        .output_buffer_size()
        .filter(|&n| n <= MAX_DECODED_BYTES)
        .ok_or(ImageError::TooLarge { width, height })?;
    let mut data = vec![0u8; size];
    let frame = reader
        .next_frame(&mut data)
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    data.truncate(frame.buffer_size());
    if frame.bit_depth != png::BitDepth::Eight {
        return Err(ImageError::Decode(format!(
            "unexpected bit depth {:?}",
            frame.bit_depth
        )));
    }
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(ImageError::Decode("palette image was not expanded".into()))
        }
    };
    // Rows may be padded; repack them tightly.
    let row = frame.width as usize * channels;
    if frame.line_size != row {
        let mut packed = Vec::with_capacity(row * frame.height as usize);
        for y in 0..frame.height as usize {
            let start = y * frame.line_size;
            let line = data
                .get(start..start + row)
                .ok_or_else(|| ImageError::Decode("short image data".into()))?;
            packed.extend_from_slice(line);
        }
        data = packed;
    }
    if data.len() < row * frame.height as usize {
        return Err(ImageError::Decode("short image data".into()));
    }
    Ok(Pixels {
        width: frame.width,
        height: frame.height,
        channels,
        color: frame.color_type,
        data,
    })
}

fn encode(p: &Pixels) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, p.width, p.height);
    encoder.set_color(p.color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    writer
        .write_image_data(&p.data)
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    Ok(out)
}

/// For each output index along an axis of `out` samples over `inp` inputs: the input span with
/// each input's coverage weight (box filter with fractional edges).
fn weights(inp: u32, out: u32) -> Vec<Vec<(usize, f32)>> {
    let scale = f64::from(inp) / f64::from(out.max(1));
    (0..out)
        .map(|o| {
            let start = f64::from(o) * scale;
            let end = (f64::from(o) + 1.0) * scale;
            let mut taps = Vec::new();
            let mut i = start.floor() as u32;
            while f64::from(i) < end && i < inp {
                let lo = start.max(f64::from(i));
                let hi = end.min(f64::from(i) + 1.0);
                if hi > lo {
                    taps.push((i as usize, ((hi - lo) / scale) as f32));
                }
                i += 1;
            }
            taps
        })
        .collect()
}

/// Area-averaging downscale to `width`×`height` (both at most the source size).
fn resample(src: &Pixels, width: u32, height: u32) -> Pixels {
    let c = src.channels;
    let (sw, sh) = (src.width as usize, src.height as usize);
    let xw = weights(src.width, width);
    let yw = weights(src.height, height);
    // Horizontal pass: sh rows of `width` pixels, in f32.
    let mut mid = vec![0f32; sh * width as usize * c];
    for y in 0..sh {
        let row = src.data.get(y * sw * c..(y + 1) * sw * c).unwrap_or(&[]);
        for (ox, taps) in xw.iter().enumerate() {
            for ch in 0..c {
                let mut acc = 0f32;
                for &(ix, w) in taps {
                    acc += f32::from(row.get(ix * c + ch).copied().unwrap_or(0)) * w;
                }
                if let Some(slot) = mid.get_mut((y * width as usize + ox) * c + ch) {
                    *slot = acc;
                }
            }
        }
    }
    // Vertical pass.
    let mut data = vec![0u8; width as usize * height as usize * c];
    for (oy, taps) in yw.iter().enumerate() {
        for ox in 0..width as usize {
            for ch in 0..c {
                let mut acc = 0f32;
                for &(iy, w) in taps {
                    acc += mid
                        .get((iy * width as usize + ox) * c + ch)
                        .copied()
                        .unwrap_or(0.0)
                        * w;
                }
                if let Some(slot) = data.get_mut((oy * width as usize + ox) * c + ch) {
                    *slot = acc.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    Pixels {
        width,
        height,
        channels: c,
        color: src.color,
        data,
    }
}

/// A screenshot ready to send: the PNG bytes and their size.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Whether the image was downscaled.
    pub scaled: bool,
}

/// Fits `png` into `limits`, downscaling when needed; an image already within them is passed
/// through byte for byte.
pub fn fit_png(png: &[u8], limits: &ImageLimits) -> Result<Scaled, ImageError> {
    let (w, h) = png_size(png)?;
    let (tw, th) = limits.fit(w, h);
    if (tw, th) == (w, h) {
        return Ok(Scaled {
            png: png.to_vec(),
            width: w,
            height: h,
            scaled: false,
        });
    }
    let src = decode(png)?;
    let out = resample(&src, tw, th);
    Ok(Scaled {
        png: encode(&out)?,
        width: tw,
        height: th,
        scaled: true,
    })
}

/// A solid-colour RGB PNG (tests, placeholders for pruned screenshots).
pub fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Result<Vec<u8>, ImageError> {
    let data = rgb
        .iter()
        .copied()
        .cycle()
        .take(width as usize * height as usize * 3)
        .collect();
    encode(&Pixels {
        width,
        height,
        channels: 3,
        color: png::ColorType::Rgb,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_anthropic_limits_scale_large_screens_only() {
        let legacy = ImageLimits {
            max_long_edge: Some(1568),
            max_pixels: Some(1_150_000),
            ..ImageLimits::default()
        };
        assert_eq!(legacy.fit(1280, 800), (1280, 800));
        let (w, h) = legacy.fit(1920, 1080);
        assert!(u64::from(w) * u64::from(h) <= 1_150_000);
        assert!((f64::from(w) / f64::from(h) - 1920.0 / 1080.0).abs() < 0.01);
        assert!(w >= 1420, "{w}x{h}");
    }

    #[test]
    fn toolset_tile_limit_holds() {
        let ga = ImageLimits {
            max_long_edge: Some(2576),
            max_tiles: Some((28, 4784)),
            ..ImageLimits::default()
        };
        assert_eq!(ga.fit(1280, 800), (1280, 800));
        let (w, h) = ga.fit(3840, 2160);
        assert!(u64::from(w.div_ceil(28)) * u64::from(h.div_ceil(28)) <= 4784);
        assert!(w <= 2576);
    }

    #[test]
    fn fit_box_and_no_upscaling() {
        let b = ImageLimits::default().with_box(Some((1024, 768)));
        assert_eq!(b.fit(1280, 800), (1024, 640));
        assert_eq!(b.fit(640, 400), (640, 400));
    }

    #[test]
    fn downscaling_averages_areas() {
        // Left half black, right half white, 4x2 → 2x1: one black, one white pixel.
        let mut data = Vec::new();
        for _ in 0..2 {
            data.extend_from_slice(&[0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
        }
        let src = encode(&Pixels {
            width: 4,
            height: 2,
            channels: 3,
            color: png::ColorType::Rgb,
            data,
        })
        .unwrap();
        let out = fit_png(
            &src,
            &ImageLimits {
                fit_box: Some((2, 1)),
                ..ImageLimits::default()
            },
        )
        .unwrap();
        assert!(out.scaled);
        assert_eq!((out.width, out.height), (2, 1));
        let back = decode(&out.png).unwrap();
        assert_eq!(back.data, vec![0, 0, 0, 255, 255, 255]);
        // A 3 → 2 reduction blends the middle column half and half.
        let src = encode(&Pixels {
            width: 3,
            height: 1,
            channels: 1,
            color: png::ColorType::Grayscale,
            data: vec![0, 100, 200],
        })
        .unwrap();
        let out = fit_png(
            &src,
            &ImageLimits {
                fit_box: Some((2, 1)),
                ..ImageLimits::default()
            },
        )
        .unwrap();
        assert_eq!(decode(&out.png).unwrap().data, vec![33, 167]);
    }

    #[test]
    fn an_image_within_limits_passes_through_unchanged() {
        let png = solid_png(8, 4, [10, 20, 30]).unwrap();
        let out = fit_png(&png, &ImageLimits::default()).unwrap();
        assert_eq!(out.png, png);
        assert!(!out.scaled);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            fit_png(b"not a png", &ImageLimits::default()),
            Err(ImageError::Decode(_))
        ));
    }
}

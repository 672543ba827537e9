//! Screenshot masking: exactly the pixels in the rectangles turn black, nothing else changes.

use airlock_secrets::{mask_png, MaskError, Rect};

/// A `width × height` PNG of `color` type whose every pixel is distinct-ish and never black.
pub fn make_png(width: u32, height: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
    let samples = match color {
        png::ColorType::Grayscale | png::ColorType::Indexed => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
    };
    let bytes_per_sample = if depth == png::BitDepth::Sixteen {
        2
    } else {
        1
    };
    let mut data = Vec::new();
    for y in 0..height {
        for x in 0..width {
            for s in 0..samples * bytes_per_sample {
                let v = if color == png::ColorType::Indexed {
                    ((x + y) % 4) as u8
                } else {
                    // 37..=236: never 0, never 255, differs per pixel and channel.
                    (37 + (x * 7 + y * 13 + s as u32 * 29) % 200) as u8
                };
                data.push(v);
            }
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(color);
    enc.set_depth(depth);
    if color == png::ColorType::Indexed {
        enc.set_palette(vec![200, 10, 10, 10, 200, 10, 10, 10, 200, 90, 90, 90]);
    }
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&data).unwrap();
    w.finish().unwrap();
    out
}

/// Decoded 8-bit pixels, their channel count and size.
pub fn decode(png_bytes: &[u8]) -> (Vec<u8>, usize, u32, u32) {
    let mut d = png::Decoder::new(std::io::Cursor::new(png_bytes));
    d.set_transformations(png::Transformations::normalize_to_color8());
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => unreachable!(),
    };
    (buf, channels, info.width, info.height)
}

fn inside(x: u32, y: u32, boxes: &[(u32, u32, u32, u32)]) -> bool {
    boxes
        .iter()
        .any(|&(x0, x1, y0, y1)| x >= x0 && x < x1 && y >= y0 && y < y1)
}

#[test]
fn only_the_pixels_in_the_rects_change_and_they_are_black() {
    let (w, h) = (40, 30);
    let original = make_png(w, h, png::ColorType::Rgba, png::BitDepth::Eight);
    let rects = [
        Rect::new(2.4, 3.6, 5.2, 2.0), // → x 2..8, y 3..6 (rounded outward)
        Rect::new(35.0, 25.0, 100.0, 100.0), // → clamped to x 35..40, y 25..30
        Rect::new(10.0, 10.0, 0.0, 0.0), // empty: nothing
        Rect::new(-50.0, -50.0, 10.0, 10.0), // fully outside: nothing
    ];
    let expected_boxes = [(2, 8, 3, 6), (35, 40, 25, 30)];
    let masked = mask_png(&original, &rects).unwrap();
    let (before, c, _, _) = decode(&original);
    let (after, c2, w2, h2) = decode(&masked);
    assert_eq!((c, c2, w2, h2), (4, 4, w, h));
    let mut changed = 0;
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) as usize) * c;
            let (a, b) = (&before[i..i + c], &after[i..i + c]);
            if inside(x, y, &expected_boxes) {
                assert_eq!(b, [0, 0, 0, 255], "({x},{y}) should be black");
                changed += 1;
            } else {
                assert_eq!(a, b, "({x},{y}) should be untouched");
            }
        }
    }
    assert_eq!(changed, 6 * 3 + 5 * 5);
}

#[test]
fn every_color_type_and_depth_is_masked() {
    let cases = [
        (png::ColorType::Grayscale, png::BitDepth::Eight, vec![0u8]),
        (
            png::ColorType::GrayscaleAlpha,
            png::BitDepth::Eight,
            vec![0, 255],
        ),
        (png::ColorType::Rgb, png::BitDepth::Eight, vec![0, 0, 0]),
        (png::ColorType::Rgb, png::BitDepth::Sixteen, vec![0, 0, 0]),
        (png::ColorType::Indexed, png::BitDepth::Eight, vec![0, 0, 0]),
    ];
    for (color, depth, black) in cases {
        let original = make_png(9, 7, color, depth);
        let masked = mask_png(&original, &[Rect::new(1.0, 1.0, 2.0, 2.0)]).unwrap();
        let (before, c, _, _) = decode(&original);
        let (after, c2, _, _) = decode(&masked);
        assert_eq!(c, c2, "{color:?}");
        for y in 0..7u32 {
            for x in 0..9u32 {
                let i = ((y * 9 + x) as usize) * c;
                if inside(x, y, &[(1, 3, 1, 3)]) {
                    assert_eq!(&after[i..i + c], black.as_slice(), "{color:?} ({x},{y})");
                } else {
                    assert_eq!(&after[i..i + c], &before[i..i + c], "{color:?} ({x},{y})");
                }
            }
        }
    }
}

#[test]
fn metadata_chunks_do_not_survive() {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, 2, 2);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.add_text_chunk("Comment".into(), "Canary-7f3a+9/x y".into())
        .unwrap();
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&[9; 12]).unwrap();
    w.finish().unwrap();
    let masked = mask_png(&out, &[]).unwrap();
    assert!(!masked.windows(6).any(|w| w == b"Canary"));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(matches!(
        mask_png(b"not a png", &[]),
        Err(MaskError::Decode(_))
    ));
    let png = make_png(4, 4, png::ColorType::Rgb, png::BitDepth::Eight);
    assert!(matches!(
        mask_png(&png[..png.len() / 2], &[]),
        Err(MaskError::Decode(_))
    ));
    assert!(matches!(
        mask_png(
            &png,
            &[
                Rect::new(0.0, 0.0, 1.0, 1.0),
                Rect::new(f64::NAN, 0.0, 1.0, 1.0)
            ]
        ),
        Err(MaskError::InvalidRect { index: 1 })
    ));
}

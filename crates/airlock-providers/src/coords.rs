//! Checked entry into [`CoordSpace::to_css`] for every adapter.
//!
//! `to_css` clamps into the viewport, which is right for rounding at the edge but would turn a
//! point far outside the screenshot into a click on whatever sits at the border. Adapters call
//! [`to_css_checked`] so such a point is refused instead.

use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::Point;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum CoordError {
    #[error("coordinates must not be negative, got ({x}, {y})")]
    Negative { x: f64, y: f64 },
    #[error("({x}, {y}) is outside the {width}x{height} {frame}")]
    Outside {
        x: f64,
        y: f64,
        width: u32,
        height: u32,
        frame: &'static str,
    },
}

/// Converts a provider point to CSS pixels after checking it lies inside the provider's frame
/// (the far edge included, since models round).
pub(crate) fn to_css_checked(
    space: CoordSpace,
    vp: Viewport,
    x: f64,
    y: f64,
) -> Result<Point, CoordError> {
    if !(x.is_finite() && y.is_finite()) || x < 0.0 || y < 0.0 {
        return Err(CoordError::Negative { x, y });
    }
    let (width, height, frame) = match space {
        CoordSpace::Screenshot { width, height } => (width, height, "screenshot"),
        CoordSpace::Grid { max } => (max, max, "grid"),
    };
    if x > f64::from(width) || y > f64::from(height) {
        return Err(CoordError::Outside {
            x,
            y,
            width,
            height,
            frame,
        });
    }
    Ok(space.to_css(x, y, vp))
}

/// Converts a distance (a scroll delta) from the provider's space to CSS pixels, with the same
/// scale factors [`CoordSpace::to_css`] uses for points but without clamping or offset.
pub(crate) fn delta_to_css(space: CoordSpace, vp: Viewport, dx: f64, dy: f64) -> (f64, f64) {
    let (w, h) = match space {
        CoordSpace::Screenshot { width, height } => {
            (f64::from(width.max(1)), f64::from(height.max(1)))
        }
        CoordSpace::Grid { max } => (f64::from(max.max(1)) + 1.0, f64::from(max.max(1)) + 1.0),
    };
    (dx * f64::from(vp.width) / w, dy * f64::from(vp.height) / h)
}

/// Whether a point already in CSS pixels lies inside the viewport (far edge included).
pub(crate) fn in_viewport(p: Point, vp: Viewport) -> bool {
    p.x.is_finite()
        && p.y.is_finite()
        && p.x >= 0.0
        && p.y >= 0.0
        && p.x <= f64::from(vp.width)
        && p.y <= f64::from(vp.height)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn points_inside_the_screenshot_are_scaled() {
        let vp = Viewport::default();
        let space = CoordSpace::Screenshot {
            width: 1024,
            height: 640,
        };
        let p = to_css_checked(space, vp, 512.0, 320.0).unwrap();
        assert_eq!(p, Point { x: 640.0, y: 400.0 });
        // The far edge is accepted and clamped by to_css.
        let edge = to_css_checked(space, vp, 1024.0, 640.0).unwrap();
        assert_eq!(
            edge,
            Point {
                x: 1279.0,
                y: 799.0
            }
        );
    }

    #[test]
    fn points_outside_the_frame_are_refused_not_clamped() {
        let vp = Viewport::default();
        let space = CoordSpace::Screenshot {
            width: 1280,
            height: 800,
        };
        let err = to_css_checked(space, vp, 5000.0, 10.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "(5000, 10) is outside the 1280x800 screenshot"
        );
        assert!(matches!(
            to_css_checked(space, vp, -1.0, 10.0),
            Err(CoordError::Negative { .. })
        ));
        let grid = CoordSpace::Grid { max: 999 };
        assert!(to_css_checked(grid, vp, 999.0, 0.0).is_ok());
        assert!(to_css_checked(grid, vp, 1000.0, 0.0).is_err());
    }
}

//! Invariants every fuzz target checks on whatever a parser accepts.

use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, Point, Target};

/// The frames and viewports the targets parse in, picked by the input's first byte.
pub fn frame(selector: u8) -> (CoordSpace, Viewport) {
    let vp = match selector & 1 {
        0 => Viewport {
            width: 1280,
            height: 800,
        },
        _ => Viewport {
            width: 1,
            height: 1,
        },
    };
    let space = match (selector >> 1) % 4 {
        0 => CoordSpace::Screenshot {
            width: 1280,
            height: 800,
        },
        1 => CoordSpace::Screenshot {
            width: 1024,
            height: 640,
        },
        2 => CoordSpace::Screenshot {
            width: 0,
            height: 0,
        },
        _ => CoordSpace::Grid { max: 999 },
    };
    (space, vp)
}

fn inside(p: &Point, vp: Viewport) -> bool {
    p.x.is_finite()
        && p.y.is_finite()
        && (0.0..=f64::from(vp.width)).contains(&p.x)
        && (0.0..=f64::from(vp.height)).contains(&p.y)
}

/// Accepted actions never leave the viewport and never carry non-finite distances.
pub fn check(actions: &[Action], vp: Viewport) {
    for a in actions {
        match a {
            Action::Click {
                target: Target::Point(p),
                ..
            }
            | Action::MouseMove { to: p } => assert!(inside(p, vp), "{a:?}"),
            Action::Drag { from, to } => assert!(inside(from, vp) && inside(to, vp), "{a:?}"),
            Action::Scroll { at, dx, dy } => {
                assert!(dx.is_finite() && dy.is_finite(), "{a:?}");
                if let Some(p) = at {
                    assert!(inside(p, vp), "{a:?}");
                }
            }
            _ => {}
        }
    }
}

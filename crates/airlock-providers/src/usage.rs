//! Token usage per request and its cost from a configurable price table.
//!
//! Airlock ships no prices: they change, and a wrong number in a cost budget is worse than
//! none. With an empty table `cost_usd` is `None`; the operator supplies prices (for example
//! from a TOML file deserialised into [`PriceTable`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tokens one request consumed, and what they cost when the model has a price.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cache reads and writes included.
    pub input_tokens: u64,
    /// Completion tokens, reasoning ("thinking") tokens included.
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Prices keyed by model name. A key ending in `*` is a prefix (`claude-opus-5*`); the exact
/// name wins over prefixes, and the longest prefix over shorter ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    pub fn with(mut self, model: impl Into<String>, price: Price) -> Self {
        self.0.insert(model.into(), price);
        self
    }

    /// The price of `model`, if the table has one.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.0.get(model) {
            return Some(*p);
        }
        self.0
            .iter()
            .filter_map(|(k, p)| {
                let prefix = k.strip_suffix('*')?;
                model.starts_with(prefix).then_some((prefix.len(), *p))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)
    }

    /// Usage of `model` with its cost filled in when priced.
    pub fn usage(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Usage {
        let cost_usd = self.price(model).map(|p| {
            (input_tokens as f64 * p.input_per_mtok + output_tokens as f64 * p.output_per_mtok)
                / 1_000_000.0
        });
        Usage {
            input_tokens,
            output_tokens,
            cost_usd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_beat_prefixes_and_longer_prefixes_beat_shorter() {
        let t = PriceTable::default()
            .with(
                "claude-*",
                Price {
                    input_per_mtok: 1.0,
                    output_per_mtok: 1.0,
                },
            )
            .with(
                "claude-opus-5*",
                Price {
                    input_per_mtok: 5.0,
                    output_per_mtok: 25.0,
                },
            )
            .with(
                "claude-opus-5-5",
                Price {
                    input_per_mtok: 6.0,
                    output_per_mtok: 30.0,
                },
            );
        assert_eq!(t.price("claude-opus-5-5").unwrap().input_per_mtok, 6.0);
        assert_eq!(t.price("claude-opus-5-1").unwrap().input_per_mtok, 5.0);
        assert_eq!(t.price("claude-haiku").unwrap().input_per_mtok, 1.0);
        assert!(t.price("gpt-5.5").is_none());
        let u = t.usage("claude-opus-5-1", 1_000_000, 200_000);
        assert_eq!(u.cost_usd, Some(10.0));
        assert_eq!(PriceTable::default().usage("x", 1, 2).cost_usd, None);
    }

    #[test]
    fn the_table_reads_from_json() {
        let t: PriceTable =
            serde_json::from_str(r#"{"gpt-5.5": {"input_per_mtok": 1.25, "output_per_mtok": 10}}"#)
                .unwrap();
        assert_eq!(t.price("gpt-5.5").unwrap().output_per_mtok, 10.0);
    }
}

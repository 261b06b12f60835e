//! An asset's verdict from its sampled values: each value goes through the detection engine
//! under the asset's name (a column name, a JSON path, a CSV header), so names sharpen what the
//! values alone would say, exactly as for a field seen in traffic.

use std::collections::HashMap;

use super::{Asset, Status};
use crate::detect::{Engine, Sensitivity};

/// What one asset's sampled values showed so far.
#[derive(Debug, Default)]
pub struct Column {
    sampled: u64,
    hits: u64,
    counts: HashMap<String, u64>,
    worst: Option<Sensitivity>,
    sample: Option<String>,
    /// Values cut to the byte limit.
    pub cut: u64,
}

impl Column {
    /// Classifies one value (empty values are not counted).
    pub fn add(&mut self, engine: &Engine, name: &str, value: &[u8]) {
        if value.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        self.sampled += 1;
        let findings = engine.scan_field(name, value, 0);
        if findings.is_empty() {
            return;
        }
        self.hits += 1;
        for f in &findings {
            *self.counts.entry(f.kind.to_string()).or_default() += 1;
            if self.worst.is_none_or(|w| f.sensitivity > w) {
                self.worst = Some(f.sensitivity);
                self.sample = Some(f.masked.clone());
            }
        }
    }

    /// The asset this column makes: `status` unless nothing could be judged.
    pub fn asset(
        self,
        source: &str,
        asset: String,
        data_type: &str,
        status: Status,
        reason: &str,
    ) -> Asset {
        let mut types: Vec<(String, u64)> = self.counts.into_iter().collect();
        types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let (status, reason) = if status == Status::Complete && self.cut > 0 {
            (
                Status::Partial,
                format!("{} values longer than the limit were cut", self.cut),
            )
        } else {
            (status, reason.to_string())
        };
        Asset {
            source: source.to_string(),
            asset,
            data_type: data_type.to_string(),
            types: types.into_iter().map(|(t, _)| t).collect(),
            hit_ratio: if self.sampled == 0 {
                0.0
            } else {
                ((self.hits as f64 / self.sampled as f64) * 1000.0).round() / 1000.0
            },
            sensitivity: match self.worst {
                None => "none".into(),
                Some(Sensitivity::Low) => "low".into(),
                Some(Sensitivity::Medium) => "medium".into(),
                Some(Sensitivity::High) => "high".into(),
            },
            masked_sample: self.sample,
            status,
            reason,
            sampled: self.sampled,
        }
    }
}

/// Whether an asset's verdict holds until its data changes: read completely, or skipped for
/// what it is (binary, an unsupported or malformed format) rather than for how the read went
/// (a permission, a timeout, a budget), so a rerun may leave its table alone.
pub fn settled(a: &Asset) -> bool {
    a.status == Status::Complete
        || (a.status == Status::Skipped
            && (a.reason == "binary type"
                || a.reason == "binary content"
                || a.reason == "no records"
                || a.reason.starts_with("unsupported format")
                || a.reason.starts_with("malformed")))
}

/// An asset that could not be read, and why.
pub fn skipped(source: &str, asset: String, data_type: &str, reason: &str) -> Asset {
    Column::default().asset(source, asset, data_type, Status::Skipped, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_ratio_and_a_masked_sample() {
        let engine = Engine::default();
        let mut cards = Column::default();
        for v in ["4111 1111 1111 1111", "5500 0000 0000 0004", "", "n/a"] {
            cards.add(&engine, "card_number", v.as_bytes());
        }
        let a = cards.asset(
            "pg",
            "db.public.t.card_number".into(),
            "text",
            Status::Complete,
            "",
        );
        assert_eq!(a.sampled, 3, "empty values are not counted");
        assert!(a.types.iter().any(|t| t.starts_with("pci.")), "{a:?}");
        assert!(a.hit_ratio > 0.6 && a.hit_ratio < 0.7, "{a:?}");
        let sample = a.masked_sample.unwrap();
        assert!(
            !sample.contains("4111") && !sample.contains("5500"),
            "{sample}"
        );

        let mut orders = Column::default();
        for v in [
            "4111 1111 1111 1112",
            "ORD-2024-000123",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            orders.add(&engine, "order_ref", v.as_bytes());
        }
        let a = orders.asset("pg", "x".into(), "text", Status::Complete, "");
        assert_eq!(
            (a.sensitivity.as_str(), a.hit_ratio),
            ("none", 0.0),
            "{a:?}"
        );
    }
}

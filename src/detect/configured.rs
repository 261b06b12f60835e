//! The engine as `[detect]` configures it: the built-in types and the operator's own.

use super::{CustomType, Engine, Sensitivity};
use crate::config::DetectConfig;

impl Engine {
    /// The engine with `config`'s custom types, or what is wrong with them.
    pub fn from_config(config: &DetectConfig) -> Result<Engine, Vec<String>> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut types = Vec::new();
        for c in &config.custom {
            let sensitivity = match c.sensitivity.to_ascii_lowercase().as_str() {
                "low" => Sensitivity::Low,
                "high" => Sensitivity::High,
                _ => Sensitivity::Medium,
            };
            // Both compile: `problems` checked them.
            let value = (!c.value.is_empty())
                .then(|| regex::bytes::Regex::new(&c.value))
                .transpose()
                .map_err(|e| vec![e.to_string()])?;
            let key = (!c.key.is_empty())
                .then(|| regex::Regex::new(&c.key))
                .transpose()
                .map_err(|e| vec![e.to_string()])?;
            types.push(CustomType {
                id: c.id.clone(),
                sensitivity,
                value,
                key,
            });
        }
        Ok(Engine::new(types))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CustomTypeConfig;

    #[test]
    fn custom_types_are_checked_then_built() {
        let mut c = DetectConfig::default();
        assert!(Engine::from_config(&c).is_ok());
        c.custom.push(CustomTypeConfig {
            id: "Bad Id".into(),
            sensitivity: "extreme".into(),
            value: "(".into(),
            key: String::new(),
        });
        let problems = Engine::from_config(&c).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        c.custom[0] = CustomTypeConfig {
            id: "acme.employee_id".into(),
            sensitivity: "High".into(),
            value: "^E[0-9]{6}$".into(),
            key: "employee".into(),
        };
        assert!(Engine::from_config(&c).is_ok());
    }
}

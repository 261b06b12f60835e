//! Kubernetes manifests as JSON values: one JSON object, or YAML with one or more documents.
//!
//! The YAML reader stops documents whose aliases would expand past its repetition limit (a
//! "billion laughs" file), so a small manifest cannot become a huge one.

use serde_json::Value;

/// The non-empty documents of `bytes`, at most `max_documents` of them.
pub fn documents(
    file_name: &str,
    bytes: &[u8],
    max_documents: usize,
) -> Result<Vec<Value>, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("{file_name}: not UTF-8 text: {e}"))?;
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(vec![v]);
    }
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        if docs.len() >= max_documents {
            return Err(format!("{file_name}: more than {max_documents} documents"));
        }
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| format!("{file_name}: not YAML: {e}"))?;
        if value.is_null() {
            continue;
        }
        docs.push(
            serde_json::to_value(&value)
                .map_err(|e| format!("{file_name}: not representable as JSON: {e}"))?,
        );
    }
    Ok(docs)
}

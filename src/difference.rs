//! Where two configs differ, for the errors that refuse a checkpoint: the
//! path of the first field whose value differs and both values, so a user
//! sees what to change rather than "another config".

use serde_json::Value;

/// The first field where `file` and `here` differ, as
/// `` `path`: A in the file, B here `` (a field one side lacks is `absent`);
/// `None` when they are equal. Objects are compared key by key in sorted
/// order, arrays element by element.
pub(crate) fn first_difference(file: &Value, here: &Value) -> Option<String> {
    let (path, a, b) = walk(file, here, String::new())?;
    let show = |v: Option<&Value>| v.map_or_else(|| "absent".to_string(), Value::to_string);
    let path = if path.is_empty() { "." } else { &path };
    Some(format!(
        "`{path}`: {} in the file, {} here",
        show(a),
        show(b)
    ))
}

type Found<'a> = (String, Option<&'a Value>, Option<&'a Value>);

fn walk<'a>(a: &'a Value, b: &'a Value, path: String) -> Option<Found<'a>> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let inner = crate::tagged::join(if path.is_empty() { "." } else { &path }, k);
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => walk(u, v, inner),
                    (u, v) => Some((inner, u, v)),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| walk(u, v, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some((path, Some(a), Some(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::first_difference;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_path_and_both_values() {
        let a = json!({"kind": "vae", "loss": {"beta": 1.0}, "encoder": {"hidden": [64, 32]}});
        assert_eq!(first_difference(&a, &a.clone()), None);
        let b = json!({"kind": "vae", "loss": {"beta": 4.0}, "encoder": {"hidden": [64, 16]}});
        assert_eq!(
            first_difference(&a, &b).unwrap(),
            "`encoder.hidden[1]`: 32 in the file, 16 here"
        );
        let c = json!({"kind": "vae", "loss": {"beta": 1.0, "free_bits": 0.5}, "encoder": {"hidden": [64, 32]}});
        assert_eq!(
            first_difference(&a, &c).unwrap(),
            "`loss.free_bits`: absent in the file, 0.5 here"
        );
        assert_eq!(
            first_difference(&json!([1]), &json!([1, 2])).unwrap(),
            "`.`: [1] in the file, [1,2] here"
        );
    }
}

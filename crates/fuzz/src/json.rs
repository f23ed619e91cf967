//! A JSON tree the mutator can bend in ways `serde_json::Value` cannot hold: objects with
//! duplicate keys (kept in order), and numbers as their literal text (`1e400`,
//! `18446744073709551616`, `0.1000000000000000055511151231257827`), so a mutated document is
//! rendered exactly as the decoders under test will read it.

use serde_json::Value;

/// One JSON value; numbers are literals, objects are ordered pairs (keys may repeat).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// The tree of a parsed value.
    pub fn from_value(v: &Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Num(n.to_string()),
            Value::String(s) => Json::Str(s.clone()),
            Value::Array(items) => Json::Arr(items.iter().map(Json::from_value).collect()),
            Value::Object(map) => Json::Obj(
                map.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Parses `text`; `None` when it is not JSON.
    pub fn parse(text: &str) -> Option<Json> {
        serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| Json::from_value(&v))
    }

    /// Compact JSON text. Strings are escaped as serde_json escapes them (a NUL becomes
    /// `\u0000`, valid JSON); the byte mutator makes invalid text when it is wanted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => write_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// Nodes in the tree, this one included.
    pub fn size(&self) -> usize {
        1 + match self {
            Json::Arr(items) => items.iter().map(Json::size).sum(),
            Json::Obj(pairs) => pairs.iter().map(|(_, v)| v.size()).sum(),
            _ => 0,
        }
    }

    /// The `index`-th node in pre-order (0 is this one), if there are that many.
    pub fn node_mut(&mut self, index: usize) -> Option<&mut Json> {
        let mut left = index;
        self.find(&mut left)
    }

    fn find(&mut self, left: &mut usize) -> Option<&mut Json> {
        if *left == 0 {
            return Some(self);
        }
        *left -= 1;
        match self {
            Json::Arr(items) => items.iter_mut().find_map(|i| i.find(left)),
            Json::Obj(pairs) => pairs.iter_mut().find_map(|(_, v)| v.find(left)),
            _ => None,
        }
    }

    /// The value of the first `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Visits every string value with the key it is under (`None` in an array).
    pub fn for_each_str_mut(
        &mut self,
        key: Option<&str>,
        f: &mut impl FnMut(Option<&str>, &mut Json),
    ) {
        match self {
            Json::Arr(items) => {
                for item in items {
                    item.for_each_str_mut(None, f);
                }
            }
            Json::Obj(pairs) => {
                for (k, v) in pairs {
                    v.for_each_str_mut(Some(k.as_str()), f);
                }
            }
            leaf => f(key, leaf),
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    // serde_json escapes every control character, quotes and backslashes.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_render_back_to_the_json_they_came_from_and_keep_duplicate_keys() {
        let text = r#"{"a":[1,2.5,"x\u0000y",null,true],"b":{"c":-7}}"#;
        let tree = Json::parse(text).expect("json");
        assert_eq!(tree.render(), text);
        assert_eq!(tree.size(), 9);
        let dup = Json::Obj(vec![
            ("id".into(), Json::Num("1".into())),
            ("id".into(), Json::Num("1e400".into())),
        ]);
        assert_eq!(dup.render(), r#"{"id":1,"id":1e400}"#);
    }
}

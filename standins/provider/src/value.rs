//! Terraform's values as the plugin protocol carries them: cty values in MessagePack
//! (docs/plugin-protocol/object-wire-format.md). Objects and maps are both MessagePack
//! maps, lists, sets and tuples arrays; an unknown value ("known after apply") is the
//! extension type 0 (refined unknowns use other extension codes, read as unknown too).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Unknown,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> &Value {
        match self {
            Value::Map(m) => m.get(key).unwrap_or(&Value::Null),
            _ => &Value::Null,
        }
    }

    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.get(key).as_str()
    }

    /// Whether anything inside is unknown.
    pub fn has_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(items) => items.iter().any(Value::has_unknown),
            Value::Map(m) => m.values().any(Value::has_unknown),
            _ => false,
        }
    }

    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or_default()),
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// JSON for known values (unknown becomes null).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Unknown => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Number(n) => number_json(*n),
            Value::String(s) => s.clone().into(),
            Value::List(items) => items.iter().map(Value::to_json).collect(),
            Value::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        }
    }
}

fn number_json(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        (n as i64).into()
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, Into::into)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("malformed MessagePack at byte {at}: {what}")]
pub struct DecodeError {
    at: usize,
    what: &'static str,
}

pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value()?;
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail<T>(&self, what: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError { at: self.at, what })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.at + n > self.bytes.len() {
            return self.fail("truncated");
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Number(f64::from(tag)),
            0xe0..=0xff => Value::Number(f64::from(tag as i8)),
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xcc => Value::Number(self.uint(1)? as f64),
            0xcd => Value::Number(self.uint(2)? as f64),
            0xce => Value::Number(self.uint(4)? as f64),
            0xcf => Value::Number(self.uint(8)? as f64),
            0xd0 => Value::Number(f64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Number(f64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Number(f64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Value::Number(self.uint(8)? as i64 as f64),
            0xca => Value::Number(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Number(f64::from_bits(self.uint(8)?)),
            0xa0..=0xbf => self.string(usize::from(tag & 0x1f))?,
            0xd9 | 0xc4 => {
                let n = self.uint(1)? as usize;
                self.string(n)?
            }
            0xda | 0xc5 => {
                let n = self.uint(2)? as usize;
                self.string(n)?
            }
            0xdb | 0xc6 => {
                let n = self.uint(4)? as usize;
                self.string(n)?
            }
            0x90..=0x9f => self.array(usize::from(tag & 0x0f))?,
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(n)?
            }
            0x80..=0x8f => self.map(usize::from(tag & 0x0f))?,
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(n)?
            }
            // Extensions: cty's unknown (0) and refined unknown values.
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xc7 => {
                let n = self.uint(1)? as usize;
                self.ext(n)?
            }
            0xc8 => {
                let n = self.uint(2)? as usize;
                self.ext(n)?
            }
            0xc9 => {
                let n = self.uint(4)? as usize;
                self.ext(n)?
            }
            _ => return self.fail("unsupported type tag"),
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, DecodeError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            // cty encodes numbers too large for a float64 as strings; callers compare
            // by attribute type, so a string here is fine.
            Ok(s) => Ok(Value::String(s.to_owned())),
            Err(_) => self.fail("string is not UTF-8"),
        }
    }

    fn array(&mut self, n: usize) -> Result<Value, DecodeError> {
        (0..n)
            .map(|_| self.value())
            .collect::<Result<_, _>>()
            .map(Value::List)
    }

    fn map(&mut self, n: usize) -> Result<Value, DecodeError> {
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let key = match self.value()? {
                Value::String(s) => s,
                _ => return self.fail("map key is not a string"),
            };
            map.insert(key, self.value()?);
        }
        Ok(Value::Map(map))
    }

    fn ext(&mut self, n: usize) -> Result<Value, DecodeError> {
        self.take(1 + n)?;
        Ok(Value::Unknown)
    }
}

pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value);
    out
}

fn write_len(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, tags: [u8; 2]) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(tags[0]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(tags[1]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn write(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0xc0),
        // cty's unknown value: extension type 0, one zero byte.
        Value::Unknown => out.extend_from_slice(&[0xd4, 0x00, 0x00]),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                out.push(0xd3);
                out.extend_from_slice(&(*n as i64).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_bits().to_be_bytes());
            }
        }
        Value::String(s) => {
            if s.len() <= 31 {
                out.push(0xa0 | s.len() as u8);
            } else if s.len() <= 0xff {
                out.push(0xd9);
                out.push(s.len() as u8);
            } else if s.len() <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            write_len(out, items.len(), 0x90, 15, [0xdc, 0xdd]);
            for item in items {
                write(out, item);
            }
        }
        Value::Map(map) => {
            write_len(out, map.len(), 0x80, 15, [0xde, 0xdf]);
            for (k, v) in map {
                write(out, &Value::String(k.clone()));
                write(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let long = "x".repeat(300);
        let value = Value::Map(BTreeMap::from([
            ("a".into(), Value::Null),
            ("b".into(), Value::Unknown),
            ("c".into(), Value::Bool(true)),
            ("d".into(), Value::Number(-3.0)),
            ("e".into(), Value::Number(2.5)),
            ("f".into(), Value::String("short".into())),
            ("g".into(), Value::String(long.clone())),
            ("h".into(), Value::String("y".repeat(100))),
            (
                "i".into(),
                Value::List((0..20).map(|n| Value::Number(f64::from(n))).collect()),
            ),
        ]));
        assert_eq!(decode(&encode(&value)).unwrap(), value);
    }

    #[test]
    fn cty_encodings_decode() {
        // {"id": unknown, "n": 7, "neg": -1, "s": "ab"} as cty writes them.
        let bytes = [
            0x84, 0xa2, b'i', b'd', 0xd4, 0x00, 0x00, 0xa1, b'n', 0x07, 0xa3, b'n', b'e', b'g',
            0xff, 0xa1, b's', 0xa2, b'a', b'b',
        ];
        let value = decode(&bytes).unwrap();
        assert_eq!(value.get("id"), &Value::Unknown);
        assert_eq!(value.get("n"), &Value::Number(7.0));
        assert_eq!(value.get("neg"), &Value::Number(-1.0));
        assert_eq!(value.str_attr("s"), Some("ab"));
    }
}

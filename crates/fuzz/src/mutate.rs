//! The mutator: bends a seed into a new input, structurally when the seed is JSON (a value
//! swapped for another type, numbers past every integer and decimal type, NUL and odd Unicode
//! in strings, deep nesting, duplicate keys, subtrees spliced from other seeds) and byte by
//! byte otherwise or on top (bit flips, interesting bytes, cuts, splices, a BOM).
//!
//! Every choice comes from the caller's seeded generator, so a run is a function of its seed.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::json::Json;

/// Number literals at and past the edges of every type a decoder may hold them in.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.0",
    "-0.0",
    "0.1",
    "0.30000000000000004",
    "1e2",
    "1E+2",
    "1e-7",
    "1e40",
    "1e400",
    "-1e400",
    "1e-400",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "79228162514264337593543950335",
    "79228162514264337593543950336",
    "0.0000000000000000000000000001",
    "0.00000000000000000000000000001",
    "1.7976931348623157e308",
    "5e-324",
    "123456789012.3456",
    "26.4463",
    "32.7731",
    "99999999999999.9999",
    "12345678901234567.89",
    "0.1000000000000000055511151231257827",
    "3.141592653589793238462643383279",
    "1099511627777",
    "3115257165",
];

/// Strings that have broken parsers: empty, blank, NUL, BOM, odd Unicode, escapes, numbers
/// and dates in text, very long.
pub fn interesting_string(rng: &mut ChaCha8Rng) -> String {
    const FIXED: &[&str] = &[
        "",
        " ",
        "\0",
        "a\0b",
        "\u{feff}",
        "\u{feff}12",
        "\u{fffd}",
        "💥",
        "\u{202e}gnirts",
        "e\u{301}",
        "\u{1f1f7}\u{1f1f4}",
        "ăîșțâ ĂÎȘȚÂ",
        "\\",
        "\"",
        "'",
        "\\\"",
        "\n",
        "\r\n",
        "\t",
        "null",
        "true",
        "false",
        "12",
        " 12 ",
        "12.5",
        "1e3",
        "-0",
        "+5",
        "0x10",
        "1_000",
        "1,5",
        "NaN",
        "Infinity",
        "-Infinity",
        "18446744073709551616",
        "79228162514264337593543950336",
        "2025-10-12 09:01:13",
        "2025-13-45 25:61:61",
        "0000-00-00 00:00:00",
        "2025-10-12T09:01:13Z",
        "RON",
        "offers",
        "<script>alert(1)</script>",
        "%00",
        "${EMAG_API_TIMEOUT}",
        "$HOME",
    ];
    match rng.gen_range(0..10) {
        0 => "x".repeat(rng.gen_range(256..20_000)),
        1 => {
            let len = rng.gen_range(1..24);
            (0..len)
                .map(|_| char::from_u32(rng.gen_range(0..0x11_0000)).unwrap_or('\u{fffd}'))
                .collect()
        }
        _ => (*FIXED.choose(rng).unwrap_or(&"")).to_owned(),
    }
}

/// A number literal: an edge, or a random decimal of `1..=40` digits and `0..=30` places.
pub fn interesting_number(rng: &mut ChaCha8Rng) -> String {
    if rng.gen_bool(0.5) {
        return (*NUMBERS.choose(rng).unwrap_or(&"0")).to_owned();
    }
    random_decimal(rng)
}

/// A decimal literal in JSON's grammar: sign, digits, maybe places, maybe an exponent.
pub fn random_decimal(rng: &mut ChaCha8Rng) -> String {
    let mut out = String::new();
    if rng.gen_bool(0.2) {
        out.push('-');
    }
    let int_digits = match rng.gen_range(0..10) {
        0..=5 => rng.gen_range(1..=6),
        6..=8 => rng.gen_range(1..=16),
        _ => rng.gen_range(1..=40),
    };
    for i in 0..int_digits {
        let d = if i == 0 && int_digits > 1 {
            rng.gen_range(1..=9)
        } else {
            rng.gen_range(0..=9)
        };
        out.push(char::from(b'0' + d));
    }
    if rng.gen_bool(0.7) {
        out.push('.');
        let places = match rng.gen_range(0..10) {
            0..=6 => rng.gen_range(1..=4),
            7..=8 => rng.gen_range(1..=12),
            _ => rng.gen_range(1..=30),
        };
        for _ in 0..places {
            out.push(char::from(b'0' + rng.gen_range(0..=9)));
        }
    }
    if rng.gen_bool(0.08) {
        out.push(if rng.gen_bool(0.5) { 'e' } else { 'E' });
        match rng.gen_range(0..3) {
            0 => out.push('-'),
            1 => out.push('+'),
            _ => {}
        }
        out.push_str(&rng.gen_range(0..40).to_string());
    }
    out
}

/// One structural change at a random node of `tree`; `donors` lend subtrees and keys.
pub fn mutate_tree(rng: &mut ChaCha8Rng, tree: &mut Json, donors: &[Json]) {
    let at = rng.gen_range(0..tree.size());
    let donor = donors.choose(rng).cloned();
    let Some(node) = tree.node_mut(at) else {
        return;
    };
    match rng.gen_range(0..16) {
        // Another type in the same place.
        0 => {
            *node = match rng.gen_range(0..6) {
                0 => Json::Null,
                1 => Json::Bool(rng.gen()),
                2 => Json::Num(interesting_number(rng)),
                3 => Json::Str(interesting_string(rng)),
                4 => Json::Arr(Vec::new()),
                _ => Json::Obj(Vec::new()),
            }
        }
        1 | 2 => *node = Json::Num(interesting_number(rng)),
        3 | 4 => *node = Json::Str(interesting_string(rng)),
        // The same number as text, or numeric text as a number.
        5 => {
            *node = match std::mem::replace(node, Json::Null) {
                Json::Num(n) => Json::Str(n),
                Json::Str(s) if s.trim().parse::<f64>().is_ok() && !s.trim().is_empty() => {
                    Json::Num(s.trim().to_owned())
                }
                Json::Str(s) => Json::Str(format!("{s}{}", interesting_string(rng))),
                other => other,
            }
        }
        // Text edits inside a string: NUL, Unicode, quotes, cuts.
        6 => {
            if let Json::Str(s) = node {
                let mut chars: Vec<char> = s.chars().collect();
                let at = rng.gen_range(0..=chars.len());
                match rng.gen_range(0..4) {
                    0 => chars.insert(at, '\0'),
                    1 => chars.insert(
                        at,
                        *[
                            '\u{feff}', '\u{fffd}', '"', '\\', '\u{202e}', '💥', '\n', '`',
                        ]
                        .choose(rng)
                        .unwrap_or(&'"'),
                    ),
                    2 => chars.truncate(at),
                    _ => {
                        let extra = interesting_string(rng);
                        chars.splice(at..at, extra.chars());
                    }
                }
                *s = chars.into_iter().collect();
            } else {
                *node = Json::Str(interesting_string(rng));
            }
        }
        // A duplicate key, with another value.
        7 => {
            if let Json::Obj(pairs) = node {
                if let Some((k, v)) = pairs.choose(rng).cloned() {
                    let value = if rng.gen_bool(0.5) {
                        Json::Num(interesting_number(rng))
                    } else {
                        v
                    };
                    let at = rng.gen_range(0..=pairs.len());
                    pairs.insert(at, (k, value));
                }
            }
        }
        // A key or element gone.
        8 => match node {
            Json::Obj(pairs) if !pairs.is_empty() => {
                let at = rng.gen_range(0..pairs.len());
                pairs.remove(at);
            }
            Json::Arr(items) if !items.is_empty() => {
                let at = rng.gen_range(0..items.len());
                items.remove(at);
            }
            _ => *node = Json::Null,
        },
        // A key renamed: empty, another case, a key of another document.
        9 => {
            if let Json::Obj(pairs) = node {
                if !pairs.is_empty() {
                    let at = rng.gen_range(0..pairs.len());
                    let key = &mut pairs[at].0;
                    *key = match rng.gen_range(0..4) {
                        0 => String::new(),
                        1 => key.to_ascii_uppercase(),
                        2 => format!("{key}\0"),
                        _ => donor
                            .as_ref()
                            .and_then(|d| match d {
                                Json::Obj(p) => p.choose(rng).map(|(k, _)| k.clone()),
                                _ => None,
                            })
                            .unwrap_or_else(|| interesting_string(rng)),
                    };
                }
            }
        }
        // A subtree of another document here.
        10 | 11 => {
            if let Some(mut d) = donor {
                let size = d.size();
                if let Some(sub) = d.node_mut(rng.gen_range(0..size)) {
                    *node = sub.clone();
                }
            }
        }
        // Nested: once, or past every recursion limit.
        12 => {
            let depth = if rng.gen_bool(0.7) {
                rng.gen_range(1..4)
            } else {
                rng.gen_range(100..1500)
            };
            let mut inner = std::mem::replace(node, Json::Null);
            for _ in 0..depth {
                inner = if rng.gen_bool(0.5) {
                    Json::Arr(vec![inner])
                } else {
                    Json::Obj(vec![("a".into(), inner)])
                };
            }
            *node = inner;
        }
        // An array grown, emptied or repeated.
        13 => match node {
            Json::Arr(items) if !items.is_empty() => match rng.gen_range(0..3) {
                0 => items.clear(),
                1 => {
                    let item = items[rng.gen_range(0..items.len())].clone();
                    items.push(item);
                }
                _ => {
                    let item = items[0].clone();
                    let n = rng.gen_range(2..200);
                    items.extend(std::iter::repeat_n(item, n));
                }
            },
            other => *other = Json::Arr(vec![other.clone()]),
        },
        // Two values of an object swapped.
        14 => {
            if let Json::Obj(pairs) = node {
                if pairs.len() >= 2 {
                    let a = rng.gen_range(0..pairs.len());
                    let b = rng.gen_range(0..pairs.len());
                    let va = pairs[a].1.clone();
                    pairs[a].1 = std::mem::replace(&mut pairs[b].1, va);
                }
            }
        }
        // A new key with any value.
        _ => {
            if let Json::Obj(pairs) = node {
                let key = donor
                    .as_ref()
                    .and_then(|d| match d {
                        Json::Obj(p) => p.choose(rng).map(|(k, _)| k.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "extra".into());
                pairs.push((key, Json::Num(interesting_number(rng))));
            }
        }
    }
}

/// Bytes that have broken parsers.
const BYTES: &[u8] = &[
    0, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'\n', b'\r', b'=', b'\'', b'#', b'$',
    b' ', 0x7f, 0x80, 0xc3, 0xef, 0xbb, 0xbf, 0xff, b'0', b'-', b'.', b'e',
];

/// One byte-level change of `bytes`; `donors` lend splices.
pub fn mutate_bytes(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>, donors: &[&[u8]]) {
    if bytes.is_empty() {
        bytes.push(*BYTES.choose(rng).unwrap_or(&0));
        return;
    }
    let len = bytes.len();
    let at = rng.gen_range(0..len);
    match rng.gen_range(0..11) {
        0 => bytes[at] ^= 1 << rng.gen_range(0..8),
        1 | 2 => bytes[at] = *BYTES.choose(rng).unwrap_or(&0),
        3 => bytes.insert(at, *BYTES.choose(rng).unwrap_or(&0)),
        4 => {
            let end = (at + rng.gen_range(1..32)).min(len);
            bytes.drain(at..end);
        }
        5 => {
            let end = (at + rng.gen_range(1..64)).min(len);
            let copy = bytes[at..end].to_vec();
            let to = rng.gen_range(0..=bytes.len());
            bytes.splice(to..to, copy);
        }
        6 => bytes.truncate(at),
        // Splice: our head, a donor's tail.
        7 => {
            if let Some(d) = donors.choose(rng).filter(|d| !d.is_empty()) {
                let from = rng.gen_range(0..d.len());
                bytes.truncate(at);
                bytes.extend_from_slice(&d[from..]);
            }
        }
        8 => {
            let mut prefix = b"\xef\xbb\xbf".to_vec();
            prefix.append(bytes);
            *bytes = prefix;
        }
        9 => {
            let n = rng.gen_range(1..8);
            for _ in 0..n {
                let to = rng.gen_range(0..=bytes.len());
                bytes.insert(to, rng.gen());
            }
        }
        _ => bytes.extend_from_slice(
            [&b" trailing"[..], b"}", b"]", b",", b"\0", b"\n{}"]
                .choose(rng)
                .copied()
                .unwrap_or(b""),
        ),
    }
}

/// A JSON input from `seed`: 1–4 structural changes, then sometimes 1–3 byte changes (which
/// mostly leave it invalid JSON), as text when it stayed UTF-8.
pub fn mutate_json(
    rng: &mut ChaCha8Rng,
    seed: &Json,
    donors: &[Json],
    donor_bytes: &[&[u8]],
) -> Vec<u8> {
    if seed.size() > 200_000 {
        // Grown past any use (repeated arrays of repeated arrays): mutate its bytes instead.
        let mut bytes = seed.render().into_bytes();
        mutate_bytes(rng, &mut bytes, donor_bytes);
        return bytes;
    }
    let mut tree = seed.clone();
    for _ in 0..rng.gen_range(1..=4) {
        mutate_tree(rng, &mut tree, donors);
    }
    let mut bytes = tree.render().into_bytes();
    if rng.gen_bool(0.2) {
        for _ in 0..rng.gen_range(1..=3) {
            mutate_bytes(rng, &mut bytes, donor_bytes);
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_same_seed_gives_the_same_mutants_and_most_stay_json() {
        let seed = Json::parse(r#"{"id":7,"name":"Ana","products":[{"id":1,"sale_price":"1.5"}]}"#)
            .expect("json");
        let run = |s: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(s);
            (0..500)
                .map(|_| mutate_json(&mut rng, &seed, std::slice::from_ref(&seed), &[]))
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let valid = a
            .iter()
            .filter(|b| serde_json::from_slice::<serde_json::Value>(b).is_ok())
            .count();
        assert!(valid > 250 && valid < 500, "{valid} of 500 still JSON");
    }

    #[test]
    fn random_decimals_are_json_numbers() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..2000 {
            let d = random_decimal(&mut rng);
            assert!(serde_json::from_str::<serde_json::Value>(&d).is_ok(), "{d}");
        }
    }
}

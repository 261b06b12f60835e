//! Maven versions, ordered like Maven's ComparableVersion: the version splits into numbers and
//! words at `.`, `-` and digit/letter boundaries; trailing "null" items (0, "", `final`, `ga`,
//! `release`) are dropped; known qualifiers order `alpha < beta < milestone < rc = cr <
//! snapshot < "" = final = ga = release < sp`, unknown ones after them alphabetically; a number
//! beats a word; a `-` starts a sub-list that sorts before a number at the same place.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Num(u128),
    Word(String),
    /// What followed a `-`.
    List(Vec<Item>),
}

fn qualifier_rank(w: &str) -> (u8, &str) {
    match w {
        "alpha" | "a" => (0, ""),
        "beta" | "b" => (1, ""),
        "milestone" | "m" => (2, ""),
        "rc" | "cr" => (3, ""),
        "snapshot" => (4, ""),
        "" | "final" | "ga" | "release" => (5, ""),
        "sp" => (6, ""),
        other => (7, other),
    }
}

fn is_null(i: &Item) -> bool {
    match i {
        Item::Num(n) => *n == 0,
        Item::Word(w) => qualifier_rank(w).0 == 5,
        Item::List(l) => l.is_empty(),
    }
}

/// Drops trailing null items, looking past non-null sub-lists (so `1.0-alpha` is `1-alpha`).
fn normalize(list: &mut Vec<Item>) {
    let mut k = list.len();
    while k > 0 {
        k -= 1;
        if is_null(&list[k]) {
            list.remove(k);
        } else if !matches!(list[k], Item::List(_)) {
            break;
        }
    }
}

fn item(token: &str, digit: bool) -> Item {
    if token.is_empty() {
        Item::Num(0)
    } else if digit {
        Item::Num(token.parse().unwrap_or(u128::MAX))
    } else {
        Item::Word(token.to_string())
    }
}

fn parse(v: &str) -> Vec<Item> {
    let v = v.trim().to_ascii_lowercase();
    // Each `-` and each digit/letter boundary opens a nested list.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut token = String::new();
    let mut digit = false;
    for c in v.chars() {
        match c {
            '.' | '-' => {
                let it = item(&token, digit);
                stack.last_mut().unwrap().push(it);
                token.clear();
                digit = false;
                if c == '-' {
                    stack.push(Vec::new());
                }
            }
            c => {
                let is_digit = c.is_ascii_digit();
                if !token.is_empty() && is_digit != digit {
                    // A single letter right before a number is a short qualifier.
                    let word = match (digit, token.as_str()) {
                        (false, "a") => "alpha".to_string(),
                        (false, "b") => "beta".to_string(),
                        (false, "m") => "milestone".to_string(),
                        _ => token.clone(),
                    };
                    let it = item(&word, digit);
                    stack.last_mut().unwrap().push(it);
                    token.clear();
                    stack.push(Vec::new());
                }
                digit = is_digit;
                token.push(c);
            }
        }
    }
    if !token.is_empty() {
        let it = item(&token, digit);
        stack.last_mut().unwrap().push(it);
    }
    while stack.len() > 1 {
        let mut inner = stack.pop().unwrap();
        normalize(&mut inner);
        stack.last_mut().unwrap().push(Item::List(inner));
    }
    let mut top = stack.pop().unwrap();
    normalize(&mut top);
    top
}

/// How an item compares with nothing (the null value of its kind).
fn cmp_null(x: &Item) -> Ordering {
    match x {
        Item::Num(n) => n.cmp(&0),
        Item::Word(w) => qualifier_rank(w).cmp(&qualifier_rank("")),
        Item::List(l) => l.first().map(cmp_null).unwrap_or(Ordering::Equal),
    }
}

fn cmp_item(a: Option<&Item>, b: Option<&Item>) -> Ordering {
    use Item::*;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(x), None) => cmp_null(x),
        (None, Some(y)) => cmp_null(y).reverse(),
        (Some(Num(x)), Some(Num(y))) => x.cmp(y),
        (Some(Num(_)), Some(_)) => Ordering::Greater,
        (Some(_), Some(Num(_))) => Ordering::Less,
        (Some(Word(x)), Some(Word(y))) => qualifier_rank(x).cmp(&qualifier_rank(y)),
        (Some(Word(_)), Some(List(_))) => Ordering::Less,
        (Some(List(_)), Some(Word(_))) => Ordering::Greater,
        (Some(List(x)), Some(List(y))) => cmp_list(x, y),
    }
}

fn cmp_list(a: &[Item], b: &[Item]) -> Ordering {
    for k in 0..a.len().max(b.len()) {
        let r = cmp_item(a.get(k), b.get(k));
        if r != Ordering::Equal {
            return r;
        }
    }
    Ordering::Equal
}

/// Compares two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    cmp_list(&parse(a), &parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_orderings() {
        // Each list strictly ascending.
        let chains: &[&[&str]] = &[
            &[
                "1-alpha",
                "1-beta",
                "1-milestone",
                "1-rc",
                "1-snapshot",
                "1",
                "1-sp",
            ],
            &["1", "1.1", "1.2", "1.10", "2.0"],
            &["1.0-alpha-1", "1.0-alpha-2", "1.0-beta-1", "1.0"],
            &["1-1", "1-2", "1.1"],
            &["1.0.0-rc1", "1.0.0", "1.0.1"],
            &["2.0.0-M1", "2.0.0-RC1", "2.0.0.RELEASE"],
        ];
        for chain in chains {
            for w in chain.windows(2) {
                assert_eq!(compare(w[0], w[1]), Ordering::Less, "{} < {}", w[0], w[1]);
                assert_eq!(
                    compare(w[1], w[0]),
                    Ordering::Greater,
                    "{} > {}",
                    w[1],
                    w[0]
                );
            }
        }
        for (a, b) in [
            ("1", "1.0"),
            ("1.0.0", "1"),
            ("1-ga", "1"),
            ("1-final", "1"),
            ("1.0.RELEASE", "1"),
            ("1a1", "1-alpha-1"),
            ("1-RC1", "1-cr1"),
        ] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} == {b}");
        }
    }
}

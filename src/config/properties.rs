//! Java properties text (java.util.Properties.load), so that a `server.properties` written for
//! Kafka reads the same here: `key=value`, `key: value` or `key value`; `#` and `!` comment
//! lines; a line ending in an odd number of backslashes continues on the next one (whose leading
//! whitespace is dropped), which is how multi-line `sasl.jaas.config` values are written; and
//! the escapes `\t`, `\n`, `\r`, `\f`, `\uXXXX` and `\` before any other character (that
//! character itself, e.g. `\=` or `\:` in a key).

/// The logical lines of `text`: continuations joined, comment and blank lines dropped.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for natural in text.split('\n') {
        let natural = natural.strip_suffix('\r').unwrap_or(natural);
        let trimmed = natural.trim_start_matches([' ', '\t', '\x0c']);
        let line = match current.take() {
            Some(mut so_far) => {
                so_far.push_str(trimmed);
                so_far
            }
            None => {
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                    continue;
                }
                trimmed.to_string()
            }
        };
        let backslashes = line.chars().rev().take_while(|&c| c == '\\').count();
        if backslashes % 2 == 1 {
            let mut line = line;
            line.pop();
            current = Some(line);
        } else {
            out.push(line);
        }
    }
    // A continuation on the last line continues into nothing.
    out.extend(current);
    out
}

/// Splits a logical line into its raw (still escaped) key and value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, '=' | ':' | ' ' | '\t' | '\x0c') {
            key_end = i;
            break;
        }
    }
    let key = &line[..key_end];
    let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, rest)
}

/// Resolves Java's escapes.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == 4 => out.push(ch),
                    // Java refuses a malformed \u escape; keep the text as written instead.
                    _ => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Parses Java properties text into (key, value) pairs in file order (a later duplicate wins
/// when collected into a map, as in Java).
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    logical_lines(text)
        .iter()
        .map(|l| {
            let (k, v) = split_key_value(l);
            (unescape(k), unescape(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> Vec<(String, String)> {
        parse_properties(text)
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let p = props("# comment\n! also\n\n  a=1\nb: 2\nc 3\nd = 4\ne\n");
        assert_eq!(
            p,
            vec![
                kv("a", "1"),
                kv("b", "2"),
                kv("c", "3"),
                kv("d", "4"),
                kv("e", "")
            ]
        );
    }

    #[test]
    fn continuation_lines_join_without_leading_whitespace() {
        let text = "listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n    username=\"admin\" \\\n    password=\"admin-secret\" \\\n    user_alice=\"alice-secret\";\nnext=1\r\n";
        let p = props(text);
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0].1,
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\" user_alice=\"alice-secret\";"
        );
        assert_eq!(p[1], kv("next", "1"));
    }

    #[test]
    fn escapes() {
        let p = props("a\\=b=c\\:d\nu=\\u0041\\t\\\\\nend=x\\\\\n");
        assert_eq!(
            p,
            vec![kv("a=b", "c:d"), kv("u", "A\t\\"), kv("end", "x\\")]
        );
    }

    #[test]
    fn a_comment_inside_a_continuation_is_value() {
        let p = props("a=1 \\\n#2\n");
        assert_eq!(p, vec![kv("a", "1 #2")]);
    }
}

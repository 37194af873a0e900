//! `ssl.principal.mapping.rules` (Kafka's SslPrincipalMapper, KIP-371): how a client
//! certificate's distinguished name becomes the principal's name.
//!
//! The rules are a comma-separated list, tried in order, the first that applies wins:
//! - `DEFAULT`: the distinguished name as it is (RFC 2253).
//! - `RULE:pattern/replacement/` with an optional `L` or `U` after the last slash: applies when
//!   the Java regex `pattern` matches the whole name; the name becomes every match replaced by
//!   `replacement` (`$1` back references; a reference to a group the pattern lacks is literal
//!   text, as Kafka makes it), lower- or upper-cased with `L` / `U`. `\` escapes a `/` or `,`.
//!
//! A name no rule applies to has no principal: the connection is closed, as Kafka's principal
//! builder fails it.

// regex-lite, not regex: the same syntax and replacement rules in a fraction of the binary, and
// its ASCII-only `\w`, `\d`, `\s` are Java's (java.util.regex without UNICODE_CHARACTER_CLASS).
// What it lacks is Unicode classes (`\p{L}`): a rule using one is refused at start-up.
use regex_lite::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        /// The pattern anchored at both ends: Java's `Matcher.matches`.
        whole: Regex,
        pattern: Regex,
        /// In the regex(-lite) crates' syntax (`${1}`, `$$`).
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

impl Default for SslPrincipalMapper {
    fn default() -> Self {
        SslPrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

/// Splits on the commas that separate rules: not those escaped with `\`, nor those inside a
/// rule's pattern or replacement (a rule ends after its third `/` and the case letter).
fn split_rules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut slashes = 0;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                current.push(c);
                escaped = true;
            }
            '/' if current.trim_start().starts_with("RULE:") => {
                slashes += 1;
                current.push(c);
            }
            ',' if !(current.trim_start().starts_with("RULE:") && slashes < 2) => {
                out.push(std::mem::take(&mut current));
                slashes = 0;
            }
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

/// `a/b/` → ("a", "b", rest after the second unescaped `/`).
fn two_parts(body: &str) -> Option<(String, String, &str)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    // `\/` is a slash of the pattern; other escapes stay for the regex.
                    if next != '/' {
                        current.push('\\');
                    }
                    current.push(next);
                }
            }
            '/' => {
                parts.push(std::mem::take(&mut current));
                if parts.len() == 2 {
                    let (p, r) = (parts[0].clone(), parts[1].clone());
                    return Some((p, r, &body[i + 1..]));
                }
            }
            _ => current.push(c),
        }
    }
    None
}

/// A Java replacement string in the regex crate's syntax, with Kafka's rule that a back
/// reference beyond the pattern's groups is literal text (SslPrincipalMapper's
/// escapeLiteralBackReferences): `$12` with one group is group 1 then "2".
fn replacement(java: &str, groups: usize) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = java.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = *chars
                    .get(i + 1)
                    .ok_or("character to be escaped is missing")?;
                if c == '$' {
                    out.push_str("$$");
                } else {
                    out.push(c);
                }
                i += 2;
            }
            '$' => {
                let digits: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if digits.is_empty() {
                    return Err("Illegal group reference".into());
                }
                // Java takes further digits while they still name a group.
                let mut n = 0usize;
                let mut used = 0;
                for d in digits.chars() {
                    let next = n * 10 + d.to_digit(10).unwrap_or(0) as usize;
                    if used > 0 && next > groups {
                        break;
                    }
                    n = next;
                    used += 1;
                }
                if n > groups {
                    // Kafka escapes it: the text stays as written.
                    out.push_str("$$");
                    out.push_str(&digits[..used]);
                } else {
                    out.push_str(&format!("${{{n}}}"));
                }
                i += 1 + used;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

impl SslPrincipalMapper {
    /// Parses `ssl.principal.mapping.rules`; `Err` says which rule is invalid.
    pub fn parse(text: &str) -> Result<SslPrincipalMapper, String> {
        let mut rules = Vec::new();
        for rule in split_rules(text) {
            if rule == "DEFAULT" {
                rules.push(Rule::Default);
                continue;
            }
            let invalid = || format!("Invalid rule: {rule}");
            let body = rule.strip_prefix("RULE:").ok_or_else(invalid)?;
            let (pattern, java_replacement, rest) = two_parts(body).ok_or_else(invalid)?;
            let case = match rest {
                "" => None,
                "L" => Some(Case::Lower),
                "U" => Some(Case::Upper),
                _ => return Err(invalid()),
            };
            let compiled = Regex::new(&pattern).map_err(|e| format!("{rule}: {e}"))?;
            let whole =
                Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("{rule}: {e}"))?;
            let groups = compiled.captures_len() - 1;
            rules.push(Rule::Replace {
                whole,
                pattern: compiled,
                replacement: replacement(&java_replacement, groups)
                    .map_err(|e| format!("{rule}: {e}"))?,
                case,
            });
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(SslPrincipalMapper { rules })
    }

    /// The principal name of a distinguished name, or None when no rule applies.
    pub fn name(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|r| match r {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                whole,
                pattern,
                replacement,
                case,
            } => whole.is_match(dn).then(|| {
                let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                match case {
                    Some(Case::Lower) => name.to_lowercase(),
                    Some(Case::Upper) => name.to_uppercase(),
                    None => name,
                }
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's SslPrincipalMapperTest cases.
    #[test]
    fn kafka_rules() {
        let m = SslPrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name("CN=Duke,OU=ServiceUsers,O=Org,C=US").as_deref(),
            Some("Duke")
        );
        assert_eq!(
            m.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US")
                .as_deref(),
            Some("duke@sme")
        );
        assert_eq!(
            m.name("cn=duke,OU=JavaSoft,O=Sun Microsystems").as_deref(),
            Some("duke")
        );
        assert_eq!(
            m.name("OU=JavaSoft,O=Sun Microsystems,C=US").as_deref(),
            Some("OU=JavaSoft,O=Sun Microsystems,C=US")
        );
        let upper = SslPrincipalMapper::parse("RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/U").unwrap();
        assert_eq!(
            upper.name("CN=duke,OU=sme,O=x").as_deref(),
            Some("DUKE@SME")
        );
        // No rule applies: no principal.
        assert_eq!(upper.name("O=x"), None);
        // Escaped commas and slashes inside a rule, spaces around rules.
        let m = SslPrincipalMapper::parse(r" RULE:^CN=([^\,]*)\,O=a\/b$/$1/ , DEFAULT ").unwrap();
        assert_eq!(m.name("CN=x,O=a/b").as_deref(), Some("x"));
        assert_eq!(m.name("CN=x,O=c").as_deref(), Some("CN=x,O=c"));
        // A reference past the groups is literal text; $12 with one group is $1 then "2".
        let m = SslPrincipalMapper::parse("RULE:^CN=(.*)$/$1-$4-$12/").unwrap();
        assert_eq!(m.name("CN=a").as_deref(), Some("a-$4-a2"));
        assert_eq!(
            SslPrincipalMapper::parse("")
                .unwrap()
                .name("CN=a")
                .as_deref(),
            Some("CN=a")
        );
    }

    #[test]
    fn invalid_rules() {
        for bad in [
            "RULE:",
            "RULE:^CN=(.*)$/$1",
            "RULE:^CN=(.*)$/$1/X",
            "DEFAULTS",
            "RULE:(/$1/",
            "KERBEROS",
        ] {
            assert!(SslPrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Kafka's inline JAAS configuration (`sasl.jaas.config`, parsed by Kafka's JaasConfig):
//! one or more `LoginModuleClass Flag key=value ... ;` entries, where a value is a word or a
//! double-quoted string (backslash escapes the next character inside quotes). gregor reads the
//! options of the entry for a login module, e.g. the `user_<name>="<password>"` options of
//! PlainLoginModule, which are the PLAIN users of a listener.

use std::collections::BTreeMap;

pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// One login module entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub login_module: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JaasError {
    #[error("JAAS config ends inside a quoted value")]
    UnterminatedQuote,
    #[error("JAAS config entry for {0} does not end with ';'")]
    MissingSemicolon(String),
    #[error("JAAS config: invalid control flag '{0}' (required, requisite, sufficient, optional)")]
    BadFlag(String),
    #[error("JAAS config: expected key=value, found '{0}'")]
    BadOption(String),
    #[error("JAAS config has no login module")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Equals,
    Semicolon,
}

fn tokens(text: &str) -> Result<Vec<Token>, JaasError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                out.push(Token::Equals);
            }
            ';' => {
                chars.next();
                out.push(Token::Semicolon);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(JaasError::UnterminatedQuote),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(JaasError::UnterminatedQuote),
                        },
                        Some(ch) => s.push(ch),
                    }
                }
                out.push(Token::Word(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || matches!(ch, '=' | ';' | '"') {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

/// Parses every entry of a JAAS config value.
pub fn parse(text: &str) -> Result<Vec<JaasEntry>, JaasError> {
    let toks = tokens(text)?;
    let mut it = toks.into_iter().peekable();
    let mut entries = Vec::new();
    while let Some(t) = it.next() {
        let Token::Word(login_module) = t else {
            return Err(JaasError::BadOption(format!("{t:?}")));
        };
        let flag = match it.next() {
            Some(Token::Word(f))
                if ["required", "requisite", "sufficient", "optional"]
                    .contains(&f.to_ascii_lowercase().as_str()) =>
            {
                f
            }
            Some(Token::Word(f)) => return Err(JaasError::BadFlag(f)),
            _ => return Err(JaasError::MissingSemicolon(login_module)),
        };
        let mut options = BTreeMap::new();
        loop {
            match it.next() {
                Some(Token::Semicolon) => break,
                Some(Token::Word(key)) => match (it.next(), it.next()) {
                    (Some(Token::Equals), Some(Token::Word(value))) => {
                        options.insert(key, value);
                    }
                    _ => return Err(JaasError::BadOption(key)),
                },
                Some(Token::Equals) => return Err(JaasError::BadOption("=".into())),
                None => return Err(JaasError::MissingSemicolon(login_module)),
            }
        }
        entries.push(JaasEntry {
            login_module,
            flag,
            options,
        });
    }
    if entries.is_empty() {
        return Err(JaasError::Empty);
    }
    Ok(entries)
}

/// The `user_<name>` options of the PlainLoginModule entry: PLAIN's users and passwords.
pub fn plain_users(entries: &[JaasEntry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter(|e| e.login_module == PLAIN_LOGIN_MODULE)
        .flat_map(|e| e.options.iter())
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_login_module_users() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a\"li;ce" user_bob=bob-pw;"#,
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].flag, "required");
        assert_eq!(e[0].options["username"], "admin");
        let users = plain_users(&e);
        assert_eq!(users.len(), 3);
        assert_eq!(users["alice"], "a\"li;ce");
        assert_eq!(users["bob"], "bob-pw");
    }

    #[test]
    fn several_entries_and_errors() {
        let e = parse("a.B required; c.D optional x=\"1\";").unwrap();
        assert_eq!(e.len(), 2);
        assert!(plain_users(&e).is_empty());
        assert_eq!(parse(""), Err(JaasError::Empty));
        assert!(matches!(
            parse("a.B required x=\"1\""),
            Err(JaasError::MissingSemicolon(_))
        ));
        assert!(matches!(parse("a.B always;"), Err(JaasError::BadFlag(_))));
        assert!(matches!(
            parse("a.B required x;"),
            Err(JaasError::BadOption(_))
        ));
        assert_eq!(
            parse("a.B required x=\"1;"),
            Err(JaasError::UnterminatedQuote)
        );
    }
}

//! Avro schemas: parsed by the `apache-avro` crate (named types of referenced schemas resolved
//! from their text), compatible by Avro's schema-resolution rules as Avro's
//! `SchemaCompatibility` (which Confluent's registry calls) decides them: a reader field missing
//! from the writer needs a default, enum symbols, union branches and promotions
//! (int→long→float→double, string↔bytes) as the specification resolves them.

use std::error::Error as _;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

#[derive(Debug)]
pub struct AvroSchema {
    pub text: String,
    schema: Schema,
}

impl AvroSchema {
    /// `referenced`: the text of each schema this one names types from.
    pub fn parse(text: &str, referenced: &[String]) -> Result<AvroSchema, String> {
        let parsed = if referenced.is_empty() {
            Schema::parse_str(text)
        } else {
            Schema::parse_str_with_list(text, referenced).map(|(schema, _)| schema)
        };
        let schema = parsed.map_err(|e| format!("Invalid schema {text}: {e}"))?;
        Ok(AvroSchema {
            text: text.to_string(),
            schema,
        })
    }

    /// Why data written with `writer` cannot be read with this schema (empty: it can).
    pub fn can_read(&self, writer: &AvroSchema) -> Vec<String> {
        match SchemaCompatibility::can_read(&writer.schema, &self.schema) {
            Ok(()) => Vec::new(),
            Err(e) => {
                let mut message = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    message.push_str(": ");
                    message.push_str(&c.to_string());
                    cause = c.source();
                }
                vec![message]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AvroSchema {
        AvroSchema::parse(text, &[]).unwrap()
    }

    #[test]
    fn resolution_rules() {
        let int = parse(r#""int""#);
        let long = parse(r#""long""#);
        // Promotion: a long reader reads int data, not the other way round.
        assert!(long.can_read(&int).is_empty());
        assert!(!int.can_read(&long).is_empty());
        let e1 = parse(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#);
        let e2 = parse(r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#);
        assert!(e2.can_read(&e1).is_empty());
        assert!(!e1.can_read(&e2).is_empty());
        let u = parse(r#"["null","string"]"#);
        let s = parse(r#""string""#);
        assert!(u.can_read(&s).is_empty());
        assert!(!s.can_read(&u).is_empty());
        // A new field without a default cannot be filled from old data.
        let r1 = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let r2 = parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        );
        let m = r2.can_read(&r1);
        assert!(m.len() == 1 && m[0].contains('b'), "{m:?}");
        assert!(r1.can_read(&r2).is_empty());
    }

    #[test]
    fn invalid_and_referenced_schemas() {
        assert!(AvroSchema::parse(r#"{"type":"record","name":"R"}"#, &[]).is_err());
        assert!(AvroSchema::parse("not json", &[]).is_err());
        assert!(AvroSchema::parse(r#""Address""#, &[]).is_err());
        let address =
            r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#;
        let user = r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Address"}]}"#;
        assert!(AvroSchema::parse(user, &[]).is_err());
        assert!(AvroSchema::parse(user, &[address.to_string()]).is_ok());
    }
}

//! The console's HTML: escaping, the page frame and tables. Pages are rendered on the server as
//! plain HTML with one small stylesheet, so every view works with JavaScript disabled and
//! needs no build step.

use std::fmt::Write;

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value percent-encoded for a link (everything but unreserved
/// characters), the inverse of `crate::http::percent_decode`.
pub fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `<a href>` with an escaped label; `href` must already be built from `url_part`s.
pub fn link(href: &str, label: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(href), escape(label))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2330}\
nav{background:#1d2330;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}\
main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#eef}td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:60em}\
.err{color:#a00}.ok{color:#060}form label{display:block;margin:.3em 0}\
textarea{width:40em;height:4em}";

/// A whole page: the navigation bar, a title, and `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t} · gregor</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/ui\">gregor</a><a href=\"/ui/topics\">Topics</a>\
         <a href=\"/ui/groups\">Groups</a><a href=\"/ui/journal\">Journal</a>\
         <a href=\"/ui/faults\">Faults</a></nav><main><h1>{t}</h1>{body}</main></body></html>\n",
        t = escape(title),
    )
}

/// A table whose cells are HTML already (escape text with `escape`, or use `Cell`).
pub struct Table {
    id: &'static str,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `id` names the table for tests and links (`<table id=..>`).
    pub fn new(id: &'static str, head: &[&'static str]) -> Table {
        Table {
            id,
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose columns are known only at run time (the keys of JSON objects).
    pub fn with_head(id: &'static str, head: Vec<String>) -> Table {
        Table {
            id,
            head,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = format!("<table id=\"{}\"><thead><tr>", self.id);
        for h in &self.head {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str("<tr>");
            for cell in row {
                out.push_str(cell);
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        if self.rows.is_empty() {
            out.push_str("<p>None.</p>");
        }
        out
    }
}

/// A text cell.
pub fn td(s: impl AsRef<str>) -> String {
    format!("<td>{}</td>", escape(s.as_ref()))
}

/// A number cell, right-aligned.
pub fn num(n: impl std::fmt::Display) -> String {
    format!("<td class=\"n\">{n}</td>")
}

/// A cell holding HTML already built (a link, a `<pre>`).
pub fn raw(html: String) -> String {
    format!("<td>{html}</td>")
}

/// A `<pre>` block of text.
pub fn pre(s: &str) -> String {
    format!("<pre>{}</pre>", escape(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn url_parts_round_trip_through_the_decoder() {
        for s in ["a b/c?d=e&f", "ü-topic_1.x~", "%41"] {
            assert_eq!(crate::http::percent_decode(&url_part(s)), s);
        }
        assert_eq!(url_part("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn tables_escape_nothing_twice_and_say_when_empty() {
        let mut t = Table::new("t", &["a<b"]);
        assert!(t.render().contains("<p>None.</p>"));
        t.row(vec![td("<x>")]);
        let html = t.render();
        assert!(html.contains("<th>a&lt;b</th>") && html.contains("<td>&lt;x&gt;</td>"));
        assert!(!html.contains("None."));
    }
}

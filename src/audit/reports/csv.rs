//! A report as CSV.

use serde_json::Value;

use super::Report;

impl Report {
    /// CSV of the rows (quoted as RFC 4180 says), preceded by `#` comment lines carrying the parameters, the
    /// chain head and the summary, so a CSV on its own still says how to reproduce it (tell your CSV reader
    /// that `#` starts a comment).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("# examroom {} report\r\n", self.report));
        out.push_str(&format!("# parameters: {}\r\n", self.parameters));
        out.push_str(&format!(
            "# chain_head: seq={} hash={}\r\n",
            self.chain_head.seq, self.chain_head.hash
        ));
        out.push_str(&format!("# summary: {}\r\n", self.summary));
        out.push_str(
            &self
                .columns
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
        for row in &self.rows {
            let fields: Vec<String> = self
                .columns
                .iter()
                .map(|c| match row.get(c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => csv_field(s),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                    Some(v) => csv_field(&v.to_string()),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

pub(super) fn csv_field(s: &str) -> String {
    // A cell a spreadsheet would run as a formula (a reason typed as `=HYPERLINK(…)`) is kept as text.
    let s = &if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

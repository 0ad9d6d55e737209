//! The outcome of a conformance run, as text for people and JSON for CI.

use std::fmt::Write as _;

use serde::Serialize;

/// Whether a check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did what a connector must.
    Pass,
    /// It did not; the detail says how.
    Fail,
    /// Not applicable (e.g. no webhook settings); the detail says why.
    Skip,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Which check, e.g. `example get_task: not found`.
    pub name: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Why it failed or was skipped, or a note on a pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The component file.
    pub component: String,
    /// The fixture file used, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixtures: Option<String>,
    /// `name@version`, once uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Upload to ready (validate, compile, describe), in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_ms: Option<f64>,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl Report {
    /// Records a pass.
    pub fn pass(&mut self, name: impl Into<String>, detail: Option<String>) {
        self.push(name, Outcome::Pass, detail);
    }

    /// Records a failure.
    pub fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name, Outcome::Fail, Some(detail.into()));
    }

    /// Records a skipped check.
    pub fn skip(&mut self, name: impl Into<String>, why: impl Into<String>) {
        self.push(name, Outcome::Skip, Some(why.into()));
    }

    /// Records a check from a list of problems: none is a pass.
    pub fn problems(&mut self, name: impl Into<String>, problems: Vec<String>) {
        if problems.is_empty() {
            self.pass(name, None);
        } else {
            self.fail(name, problems.join("\n"));
        }
    }

    fn push(&mut self, name: impl Into<String>, outcome: Outcome, detail: Option<String>) {
        self.checks.push(Check {
            name: name.into(),
            outcome,
            detail,
        });
    }

    /// How many checks had this outcome.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }

    /// Whether nothing failed.
    pub fn passed(&self) -> bool {
        self.count(Outcome::Fail) == 0
    }

    /// The report for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "plugboard test {}", self.component);
        if let Some(c) = &self.connector {
            let _ = write!(out, " ({c}");
            if let Some(ms) = self.upload_ms {
                let _ = write!(out, ", upload to ready {ms:.0} ms");
            }
            out.push(')');
        }
        out.push('\n');
        if let Some(f) = &self.fixtures {
            let _ = writeln!(out, "fixtures: {f}");
        }
        for check in &self.checks {
            let tag = match check.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail => "FAIL",
                Outcome::Skip => "SKIP",
            };
            let _ = writeln!(out, "  {tag}  {}", check.name);
            if let Some(detail) = &check.detail {
                for line in detail.lines() {
                    let _ = writeln!(out, "          {line}");
                }
            }
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Skip)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_checks_and_counts() {
        let mut r = Report {
            component: "x.wasm".into(),
            connector: Some("x@1.0.0".into()),
            upload_ms: Some(12.3),
            ..Report::default()
        };
        r.pass("upload", None);
        r.fail("example a", "expected error X\ngot Y");
        r.skip("webhooks", "no webhook settings");
        let text = r.render();
        assert!(text.contains("x@1.0.0, upload to ready 12 ms"), "{text}");
        assert!(
            text.contains("  FAIL  example a\n          expected error X\n          got Y"),
            "{text}"
        );
        assert!(text.ends_with("1 passed, 1 failed, 1 skipped\n"), "{text}");
        assert!(!r.passed());
    }
}

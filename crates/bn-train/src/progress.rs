//! Plain progress lines for runs whose output is not a terminal (CI, logs, pipes): a line at
//! every quarter of an epoch and at its end, instead of burn-train's TUI. The line at the end
//! says where the split really ended: a run stopped early (the divergence guard) ends with
//! `, stopped` at the items it got through, not at 100%.

use std::collections::HashMap;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// Prints `epoch 3/10 train 50% (30000/60000) | Loss ... | Accuracy ...` lines.
#[derive(Default)]
pub struct PlainProgress {
    names: HashMap<MetricId, String>,
    latest: Vec<(String, String)>,
    epoch: usize,
    epochs: usize,
    split: String,
    total: usize,
    /// Items of the current split processed so far.
    done: usize,
    next_quarter: usize,
    /// Print nothing.
    silent: bool,
}

impl PlainProgress {
    /// A renderer with nothing printed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A renderer that prints nothing (burn-train needs one when its TUI is not wanted).
    pub fn silent() -> Self {
        Self {
            silent: true,
            ..Self::default()
        }
    }

    fn record(&mut self, state: MetricState) {
        let entry = match state {
            MetricState::Generic(entry) | MetricState::Numeric(entry, _) => entry,
        };
        let name = self
            .names
            .get(&entry.metric_id)
            .cloned()
            .unwrap_or_else(|| "metric".into());
        let text = entry.serialized_entry.formatted;
        match self.latest.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = text,
            None => self.latest.push((name, text)),
        }
    }

    /// The line after `done` items; `stopped` marks a split that ended before its last item.
    fn line(&self, done: usize, stopped: bool) -> String {
        let percent = (done * 100).checked_div(self.total).unwrap_or(100);
        let mut line = format!(
            "epoch {}/{} {} {percent:>3}% ({done}/{})",
            self.epoch, self.epochs, self.split, self.total
        );
        if stopped {
            line.push_str(", stopped");
        }
        for (name, value) in &self.latest {
            line.push_str(&format!(" | {name} {value}"));
        }
        line
    }

    /// The line at the end of a split: at the items it got through.
    fn end_line(&self) -> String {
        self.line(self.done, self.done < self.total)
    }
}

impl MetricsRendererTraining for PlainProgress {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }
}

impl TrainingProgressLogger for PlainProgress {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _: Option<usize>,
        _: Option<&str>,
    ) {
        self.epochs = total_epochs;
        self.epoch = starting_epoch;
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = if split.eq_ignore_ascii_case("valid") {
            "test (eval mode)".into()
        } else {
            split.to_lowercase()
        };
        self.total = total_items;
        self.done = 0;
        self.next_quarter = 1;
        self.latest.clear();
    }

    fn update_split(&mut self, items_processed: usize) {
        self.done = items_processed;
        if self.next_quarter < 4 && items_processed * 4 >= self.total * self.next_quarter {
            if !self.silent {
                println!("{}", self.line(items_processed, false));
            }
            self.next_quarter += 1;
        }
    }

    fn end_split(&mut self) {
        if !self.silent {
            println!("{}", self.end_line());
        }
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for PlainProgress {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.update_split(items_processed);
    }

    fn end_test(&mut self) {
        self.end_split();
    }

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRendererEvaluation for PlainProgress {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record(state);
    }
}

impl MetricsRenderer for PlainProgress {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A renderer in epoch 1 of 2 after `done` of 256 training items.
    fn after(done: &[usize]) -> PlainProgress {
        let mut progress = PlainProgress::new();
        progress.start(2, 0, None, None);
        progress.update_epoch(0);
        progress.start_split("Train", 256);
        for &items in done {
            progress.update_split(items);
        }
        progress
    }

    #[test]
    fn a_split_that_ends_early_says_where_it_stopped() {
        assert_eq!(
            after(&[32, 64]).end_line(),
            "epoch 1/2 train  25% (64/256), stopped"
        );
        assert_eq!(
            after(&[]).end_line(),
            "epoch 1/2 train   0% (0/256), stopped"
        );
    }

    #[test]
    fn a_split_that_runs_to_its_end_ends_at_100_percent() {
        assert_eq!(
            after(&[128, 256]).end_line(),
            "epoch 1/2 train 100% (256/256)"
        );
    }
}

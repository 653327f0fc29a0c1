//! A training job's CloudWatch logs: group `/aws/sagemaker/TrainingJobs`, one stream per host
//! named `<job>/algo-N-<epoch>`.
//!
//! Each stream is read from its head with `GetLogEvents` and its `nextForwardToken`, page after
//! page, until the token comes back unchanged: that is the end of the stream for now, and the
//! token is kept so that the next read starts exactly after the last event (no line lost or
//! repeated, however many pages or polls). Lines of several streams are merged by timestamp,
//! one page per stream in memory at a time, so each host's lines stay in their order.

use crate::aws::errors::{classify, CallError};
use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub const LOG_GROUP: &str = "/aws/sagemaker/TrainingJobs";

/// Safety net: a stream that keeps answering empty pages with new tokens is left for the next
/// poll after this many pages.
const MAX_EMPTY_PAGES: usize = 100;

/// One log line and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub host: String,
    pub stream: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub message: String,
}

impl LogLine {
    /// The line as printed: `[algo-1] message` when several hosts log, else the message.
    pub fn render(&self, prefix: bool) -> String {
        let msg = self.message.trim_end_matches(['\n', '\r']);
        if prefix {
            format!("[{}] {msg}", self.host)
        } else {
            msg.to_string()
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "host": self.host,
            "stream": self.stream,
            "timestamp": self.timestamp,
            "message": self.message.trim_end_matches(['\n', '\r']),
        })
    }
}

/// The host of a stream: `job/algo-1-1700000000` -> `algo-1`.
pub fn host_of(job: &str, stream: &str) -> String {
    let rest = stream
        .strip_prefix(job)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(stream);
    // `algo-N-<epoch>`: drop the epoch only when what is left still ends in `-N`.
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rest.rsplit_once('-') {
        Some((host, epoch))
            if numeric(epoch) && host.rsplit_once('-').is_some_and(|(_, n)| numeric(n)) =>
        {
            host.to_string()
        }
        _ => rest.to_string(),
    }
}

#[derive(Debug, Default)]
struct Cursor {
    host: String,
    /// The forward token to read from next; None before the first read.
    token: Option<String>,
    buf: VecDeque<OutputLogEvent>,
    at_end: bool,
}

/// The reading position in every stream of one job.
#[derive(Debug)]
pub struct LogTail {
    job: String,
    /// Only events at or after this time (ms since the epoch), for `--since`.
    start_time: Option<i64>,
    streams: BTreeMap<String, Cursor>,
    /// The job's instance count, when known: lines get host prefixes when it is above 1.
    pub instance_count: i32,
}

impl LogTail {
    pub fn new(job: &str, start_time: Option<i64>) -> LogTail {
        LogTail {
            job: job.to_string(),
            start_time,
            streams: BTreeMap::new(),
            instance_count: 1,
        }
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Do lines need their host in front: several hosts, or several instances.
    pub fn multi_host(&self) -> bool {
        let hosts: BTreeSet<&str> = self.streams.values().map(|c| c.host.as_str()).collect();
        hosts.len() > 1 || self.instance_count > 1
    }

    /// Find the job's streams (DescribeLogStreams with the prefix `<job>/`, every page).
    /// Returns how many new streams were found. A missing log group means no streams yet.
    pub async fn discover(&mut self, client: &Client) -> Result<usize, CallError> {
        let prefix = format!("{}/", self.job);
        let mut found = 0;
        let mut pages = client
            .describe_log_streams()
            .log_group_name(LOG_GROUP)
            .log_stream_name_prefix(&prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let out = match page {
                Ok(o) => o,
                Err(e) => {
                    let is_missing = e
                        .as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception())
                        || crate::aws::error_code(&e).as_deref()
                            == Some("ResourceNotFoundException");
                    if is_missing {
                        return Ok(found);
                    }
                    return Err(classify("logs:DescribeLogStreams", &e));
                }
            };
            for s in out.log_streams() {
                if let Some(name) = s.log_stream_name() {
                    if !self.streams.contains_key(name) {
                        self.streams.insert(
                            name.to_string(),
                            Cursor {
                                host: host_of(&self.job, name),
                                ..Default::default()
                            },
                        );
                        found += 1;
                    }
                }
            }
        }
        Ok(found)
    }

    /// Read one page of a stream into its buffer.
    async fn fetch(&mut self, client: &Client, name: &str) -> Result<(), CallError> {
        let start_time = self.start_time;
        let c = self.streams.get_mut(name).expect("known stream");
        let mut req = client
            .get_log_events()
            .log_group_name(LOG_GROUP)
            .log_stream_name(name)
            .start_from_head(true);
        if let Some(t) = &c.token {
            req = req.next_token(t);
        }
        // With every read, not just the first: a token is a position among the events the
        // same filter selects (so moto; CloudWatch is indifferent).
        if let Some(st) = start_time {
            req = req.start_time(st);
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify("logs:GetLogEvents", &e))?;
        let next = out.next_forward_token().map(str::to_string);
        let repeated = next.is_none() || next == c.token;
        c.buf.extend(out.events().iter().cloned());
        if repeated {
            c.at_end = true;
        }
        if next.is_some() {
            c.token = next;
        }
        Ok(())
    }

    /// Everything the known streams hold past the last read, merged by timestamp, handed to
    /// `emit` in order. Returns the number of lines.
    pub async fn drain(
        &mut self,
        client: &Client,
        emit: &mut dyn FnMut(LogLine),
    ) -> Result<usize, CallError> {
        for c in self.streams.values_mut() {
            c.at_end = false;
        }
        let names: Vec<String> = self.streams.keys().cloned().collect();
        let mut count = 0;
        loop {
            // Every stream has a line at hand, or has none left for now.
            for name in &names {
                let mut empty_pages = 0;
                loop {
                    let c = &self.streams[name];
                    if !c.buf.is_empty() || c.at_end {
                        break;
                    }
                    if empty_pages >= MAX_EMPTY_PAGES {
                        self.streams.get_mut(name).expect("known").at_end = true;
                        break;
                    }
                    self.fetch(client, name).await?;
                    empty_pages += 1;
                }
            }
            // The earliest line at hand, ties in stream order.
            let next = names
                .iter()
                .filter_map(|n| {
                    self.streams[n]
                        .buf
                        .front()
                        .map(|e| (e.timestamp().unwrap_or(0), n))
                })
                .min();
            let Some((_, name)) = next else { break };
            let name = name.clone();
            let c = self.streams.get_mut(&name).expect("known");
            let e = c.buf.pop_front().expect("non-empty");
            emit(LogLine {
                host: c.host.clone(),
                stream: name,
                timestamp: e.timestamp().unwrap_or(0),
                message: e.message().unwrap_or_default().to_string(),
            });
            count += 1;
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsOutput;
    use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
    use aws_sdk_cloudwatchlogs::types::LogStream;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn ev(ts: i64, msg: &str) -> OutputLogEvent {
        OutputLogEvent::builder().timestamp(ts).message(msg).build()
    }

    fn page(events: Vec<OutputLogEvent>, token: &str) -> GetLogEventsOutput {
        GetLogEventsOutput::builder()
            .set_events(Some(events))
            .next_forward_token(token)
            .next_backward_token("b/0")
            .build()
    }

    #[test]
    fn hosts_come_from_stream_names() {
        assert_eq!(host_of("unet-1", "unet-1/algo-1-1700000000"), "algo-1");
        assert_eq!(host_of("unet-1", "unet-1/algo-12-1700000000"), "algo-12");
        assert_eq!(host_of("unet-1", "unet-1/algo-2"), "algo-2");
        let l = LogLine {
            host: "algo-2".into(),
            stream: "s".into(),
            timestamp: 1,
            message: "epoch 1 loss=0.5\n".into(),
        };
        assert_eq!(l.render(true), "[algo-2] epoch 1 loss=0.5");
        assert_eq!(l.render(false), "epoch 1 loss=0.5");
    }

    /// Two hosts; streams listed over two DescribeLogStreams pages; each stream read over
    /// several GetLogEvents pages (one of them empty) and ending with a repeated token. Then
    /// new events arrive and a second drain reads only those.
    #[tokio::test]
    async fn pages_and_hosts_merge_without_loss_or_repeat() {
        let job = "unet-1";
        let s1 = "unet-1/algo-1-1700000000";
        let s2 = "unet-1/algo-2-1700000000";
        let list1 = mock!(Client::describe_log_streams)
            .match_requests(|r| r.next_token().is_none())
            .then_output(move || {
                DescribeLogStreamsOutput::builder()
                    .log_streams(LogStream::builder().log_stream_name(s1).build())
                    .next_token("p2")
                    .build()
            });
        let list2 = mock!(Client::describe_log_streams)
            .match_requests(|r| r.next_token() == Some("p2"))
            .then_output(move || {
                DescribeLogStreamsOutput::builder()
                    .log_streams(LogStream::builder().log_stream_name(s2).build())
                    .build()
            });
        let g = |stream: &'static str, token: Option<&'static str>| {
            mock!(Client::get_log_events).match_requests(move |r| {
                r.log_stream_name() == Some(stream)
                    && r.next_token() == token
                    && r.start_from_head() == Some(true)
                    && r.log_group_name() == Some(LOG_GROUP)
            })
        };
        // Host 1: two pages, an empty page with a new token, then the token repeats.
        let a0 = g(s1, None).then_output(|| page(vec![ev(10, "a1"), ev(30, "a2")], "f/a1"));
        let a1 = g(s1, Some("f/a1")).then_output(|| page(vec![ev(50, "a3")], "f/a2"));
        let a2 = g(s1, Some("f/a2")).then_output(|| page(vec![], "f/a3"));
        // After the first drain, f/a3 first repeats, then (second drain) has one new event.
        let a3 = g(s1, Some("f/a3"))
            .sequence()
            .output(|| page(vec![], "f/a3"))
            .output(|| page(vec![ev(70, "a4")], "f/a4"))
            .build();
        let a4 = g(s1, Some("f/a4")).then_output(|| page(vec![], "f/a4"));
        // Host 2: one page, then the token repeats.
        let b0 = g(s2, None).then_output(|| page(vec![ev(20, "b1"), ev(40, "b2")], "f/b1"));
        let b1 = g(s2, Some("f/b1")).then_output(|| page(vec![], "f/b1"));
        let logs = mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            [&list1, &list2, &a0, &a1, &a2, &a3, &a4, &b0, &b1]
        );

        let mut tail = LogTail::new(job, None);
        assert_eq!(tail.discover(&logs).await.unwrap(), 2);
        assert!(tail.multi_host());
        let mut lines = Vec::new();
        let n = tail
            .drain(&logs, &mut |l| lines.push(l.render(true)))
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            lines,
            [
                "[algo-1] a1",
                "[algo-2] b1",
                "[algo-1] a2",
                "[algo-2] b2",
                "[algo-1] a3"
            ]
        );
        // Rediscovery finds nothing new; the next drain reads only the new line.
        assert_eq!(tail.discover(&logs).await.unwrap(), 0);
        let mut more = Vec::new();
        tail.drain(&logs, &mut |l| more.push(l.render(true)))
            .await
            .unwrap();
        assert_eq!(more, ["[algo-1] a4"]);
        assert_eq!(a0.num_calls(), 1, "the head is read once");
        assert_eq!(b0.num_calls(), 1);
        assert_eq!(a3.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_missing_log_group_means_no_streams_yet() {
        let missing = mock!(Client::describe_log_streams).then_error(|| {
            aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsError::ResourceNotFoundException(
                aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException::builder()
                    .message("The specified log group does not exist.")
                    .build(),
            )
        });
        let logs = mock_client!(aws_sdk_cloudwatchlogs, [&missing]);
        let mut tail = LogTail::new("unet-1", None);
        assert_eq!(tail.discover(&logs).await.unwrap(), 0);
        let n = tail
            .drain(&logs, &mut |_| panic!("no lines"))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn since_is_sent_with_every_read() {
        let s1 = "unet-1/algo-1-1700000000";
        let list = mock!(Client::describe_log_streams).then_output(move || {
            DescribeLogStreamsOutput::builder()
                .log_streams(LogStream::builder().log_stream_name(s1).build())
                .build()
        });
        let first = mock!(Client::get_log_events)
            .match_requests(|r| r.next_token().is_none() && r.start_time() == Some(1000))
            .then_output(|| page(vec![ev(1500, "recent")], "f/1"));
        let end = mock!(Client::get_log_events)
            .match_requests(|r| r.next_token() == Some("f/1") && r.start_time() == Some(1000))
            .then_output(|| page(vec![], "f/1"));
        let logs = mock_client!(
            aws_sdk_cloudwatchlogs,
            RuleMode::MatchAny,
            [&list, &first, &end]
        );
        let mut tail = LogTail::new("unet-1", Some(1000));
        tail.discover(&logs).await.unwrap();
        assert!(!tail.multi_host());
        let mut lines = Vec::new();
        tail.drain(&logs, &mut |l| lines.push(l.render(false)))
            .await
            .unwrap();
        assert_eq!(lines, ["recent"]);
    }
}

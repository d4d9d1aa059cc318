//! The command line: every clap argument struct of `cutover`, and only those. The library
//! crates take typed options ([`cutover_backends::aws::AwsOverrides`],
//! [`cutover_tui::share::ShareOptions`], ...) and never see clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::Format;
use crate::share::{AttachToken, Fingerprint, ShareAddr, ShareError, ShareOptions};
use crate::sim::Fault;

/// A terminal cockpit for the maintenance window of a live database migration.
#[derive(Parser)]
#[command(name = "cutover", version, about, long_about = None)]
pub struct Cli {
    /// Write the program's log here (default: <sessions-dir>/cutover.log). Never to the screen.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// How long to wait for any database or peer connection to open and finish its handshake
    /// before failing with "no answer from host:port" (1ms to 300s).
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_connect_timeout)]
    pub connect_timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Rehearse a whole cutover on the embedded world (SQLite, simulated DMS, DNS, clients).
    Rehearse(RehearseArgs),
    /// Drive a real migration window: the cockpit with actions enabled.
    Run(RunArgs),
    /// The same cockpit, read-only: no action can be taken from it.
    Watch(WatchArgs),
    /// One poll of every source, then the gate state of the next step (exit 0 green, 1 red or
    /// unknown, 2 plan or configuration error).
    Check(CheckArgs),
    /// Compare two databases table by table (counts, checksums, differing keys).
    Drift(DriftArgs),
    /// Check a transcript's hash chain and schema: exit 0 intact, 1 tampered or damaged, 2
    /// unreadable; names the first bad line and why.
    Verify(VerifyArgs),
    /// Replay a transcript in the cockpit: the same panes, rebuilt from the recorded events.
    Replay {
        #[command(flatten)]
        args: ReplayArgs,
        /// Colour theme: dark, light, high-contrast, colorblind, or a path to a theme file.
        #[arg(long, value_name = "NAME|PATH")]
        theme: Option<String>,
    },
    /// The postmortem of a transcript, as Markdown or JSON.
    Report(ReportArgs),
    /// Continue a session that died mid-cutover, in a new transcript linked to the old one.
    Resume(ResumeArgs),
    /// Attach to a shared session: the same cockpit, live, read-only; approve four-eyes steps.
    Attach(AttachArgs),
    /// Create the heartbeat table on the plan's source and write a first beat (needed once
    /// before `run --heartbeat`; print the SQL with --print-sql to run it yourself).
    HeartbeatSetup {
        /// The plan file.
        plan: PathBuf,
        /// Print the CREATE TABLE for the source's engine instead of running it.
        #[arg(long)]
        print_sql: bool,
    },
    /// Work with plan files.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Print a shell completion script: `cutover completions bash > /etc/bash_completion.d/cutover`,
    /// `cutover completions zsh > "${fpath[1]}/_cutover"`, `cutover completions fish >
    /// ~/.config/fish/completions/cutover.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or with --out DIR write cutover.1 and one page per
    /// subcommand (cutover-run.1, …) there: `cutover man | man -l -`.
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum PlanCommand {
    /// Check plan files; every error is reported with file:line:col, reason and hint.
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// The dry run: every step with its gates, the exact calls its action and undo make,
    /// phrases, timeouts, approvals, the abort conditions and the rollback order. Changes
    /// nothing; with --check it also polls the sources once and marks each gate.
    Show(PlanShowArgs),
    /// List the gate inputs a plan may test.
    Inputs,
    /// Print the built-in rehearsal plan (a starting point for your own).
    Example,
}

#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Colour theme: dark, light, high-contrast, colorblind, or a path to a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Where transcripts are written.
    #[arg(long, value_name = "DIR", default_value = "sessions")]
    pub sessions_dir: PathBuf,
    /// Who is at the keyboard (recorded with every decision). Default: $USER.
    #[arg(long)]
    pub operator: Option<String>,
    /// Sign the transcript with this OpenSSH Ed25519 private key (unencrypted) instead of
    /// a key generated for the session. Its public line then verifies the file.
    #[arg(long, value_name = "PATH")]
    pub sign_key: Option<PathBuf>,
}

impl CommonArgs {
    /// The operator's signing key, read now so a bad file stops the session before it
    /// starts; `None`: a per-session key.
    pub fn sign_key(&self) -> anyhow::Result<Option<crate::transcript::SessionKey>> {
        read_sign_key(self.sign_key.as_deref())
    }
}

#[derive(Args)]
pub struct RehearseArgs {
    /// Run headless: confirm each step when its gates are green, roll back on timeout.
    #[arg(long)]
    pub autopilot: bool,
    /// With --autopilot or --sweep: print the summary (the sweep's report) as JSON, and
    /// nothing else on stdout.
    #[arg(long)]
    pub json: bool,
    /// Faults to inject, comma-separated: lag-spike, drop-change, api-throttle, dns-slow,
    /// replicator-stall, source-panic, late-drift, or `all`. With --sweep: the faults each
    /// seed draws its combination from (default: all).
    #[arg(long, value_name = "FAULT[,FAULT]|all", value_delimiter = ',', value_parser = parse_chaos)]
    pub chaos: Vec<Chaos>,
    /// Seed for the workload and the fault schedule (same seed, same run: under the
    /// simulated clock, the same records to the millisecond).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `sim`: simulated time (the autopilot's default: repeatable, and a rehearsal takes a
    /// fraction of a second); `real`: the wall clock (the interactive cockpit's only clock,
    /// and the autopilot's when it sends [[notify]] webhooks or serves --status-addr).
    #[arg(long, value_name = "real|sim", value_parser = parse_clock)]
    pub clock: Option<crate::clock::ClockKind>,
    /// Run N autopilot rehearsals on simulated time (seeds --seed-from.., faults, their
    /// timing and combinations drawn from each seed) on every core, check the safety rules
    /// after each, print a table of outcomes and, for any violation, the command that
    /// reproduces it. Exits 1 on a violation.
    #[arg(long, value_name = "N", conflicts_with_all = ["autopilot", "share", "status_addr"])]
    pub sweep: Option<u64>,
    /// With --sweep: the first seed.
    #[arg(long, value_name = "S", default_value_t = 1, requires = "sweep")]
    pub seed_from: u64,
    /// With --sweep: how many rehearsals run at once (default: one per core).
    #[arg(long, value_name = "J", requires = "sweep")]
    pub jobs: Option<usize>,
    /// A rehearsal plan file instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub status: StatusArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct RunArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Write a heartbeat row on the source every second and read it on the target for
    /// end-to-end lag (`cutover heartbeat-setup` creates the table).
    #[arg(long)]
    pub heartbeat: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub status: StatusArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct WatchArgs {
    /// The plan file.
    pub plan: PathBuf,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub status: StatusArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct PlanShowArgs {
    /// The plan file. Without one: the built-in rehearsal plan.
    pub plan: Option<PathBuf>,
    /// Print the dry run as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also poll every source once (as `cutover check`) and mark which gates would be green
    /// now (real plans only: the rehearsal world runs inside `cutover rehearse`).
    #[arg(long)]
    pub check: bool,
    /// With --check: where the driving session's transcripts are (`dns.status` follows the
    /// last Route 53 change recorded there).
    #[arg(long, value_name = "DIR", default_value = "sessions")]
    pub sessions_dir: PathBuf,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The plan file.
    pub plan: PathBuf,
    /// Print readings and gates as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the driving session's transcripts are: `dns.status` follows the last Route 53
    /// change recorded there for this plan.
    #[arg(long, value_name = "DIR", default_value = "sessions")]
    pub sessions_dir: PathBuf,
    #[command(flatten)]
    pub aws: AwsArgs,
}

fn parse_connect_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write it like 5s or 500ms)"))?;
    let max = cutover_runtime::net::MAX_CONNECT_TIMEOUT;
    if d.is_zero() || d > max {
        return Err(format!(
            "must be more than 0 and at most {}s",
            max.as_secs()
        ));
    }
    Ok(d)
}

/// One `--chaos` entry: a fault, or `all` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chaos {
    One(Fault),
    All,
}

fn parse_chaos(s: &str) -> Result<Chaos, String> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Chaos::All);
    }
    s.trim()
        .parse::<Fault>()
        .map(Chaos::One)
        .map_err(|e| format!("{e}, or all"))
}

fn parse_clock(s: &str) -> Result<crate::clock::ClockKind, String> {
    s.parse()
}

impl RehearseArgs {
    /// The faults `--chaos` names, each once, in `Fault::ALL` order when `all` is given.
    pub fn faults(&self) -> Vec<Fault> {
        if self.chaos.contains(&Chaos::All) {
            return Fault::ALL.to_vec();
        }
        let mut out: Vec<Fault> = Vec::new();
        for c in &self.chaos {
            if let Chaos::One(f) = c
                && !out.contains(f)
            {
                out.push(*f);
            }
        }
        out
    }
}

/// Command-line overrides of the plan's `[aws]` section.
#[derive(Args, Clone, Debug, Default)]
pub struct AwsArgs {
    /// AWS profile to use (overrides the plan's [aws] profile and AWS_PROFILE)
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region (overrides the plan's [aws] region and AWS_REGION)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Endpoint URL for every AWS call: a VPC endpoint or an emulator (overrides the plan and
    /// AWS_ENDPOINT_URL)
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// The typed overrides the AWS backend takes.
    pub fn overrides(&self) -> crate::aws::AwsOverrides {
        crate::aws::AwsOverrides {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

/// `--status-addr IP:PORT` and `--allow-remote`, for run, watch, rehearse and resume.
#[derive(Args, Clone, Debug)]
pub struct StatusArgs {
    /// Serve read-only GET /status (the `check --json` document, live) and GET /metrics
    /// (Prometheus text format) on IP:PORT, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "IP:PORT")]
    pub status_addr: Option<std::net::SocketAddr>,
    /// Allow --share or --status-addr on a wildcard or non-loopback address (prefer an SSH
    /// tunnel).
    #[arg(long)]
    pub allow_remote: bool,
}

impl StatusArgs {
    /// Binds `--status-addr` now, so a refused address or a taken port stops the command
    /// before the session opens. `share`: whether `--share` was given (`--allow-remote`
    /// needs one of the two).
    pub fn listener(&self, share: bool) -> anyhow::Result<Option<crate::status::StatusListener>> {
        if self.allow_remote && !share && self.status_addr.is_none() {
            anyhow::bail!(
                "--allow-remote applies to --share or --status-addr; give one of them, or drop --allow-remote"
            );
        }
        self.status_addr
            .map(|a| crate::status::StatusListener::bind(a, self.allow_remote))
            .transpose()
            .map_err(anyhow::Error::from)
    }
}

/// `--share ADDR`, for `cutover run` and `cutover rehearse`.
#[derive(Clone, Debug, Default, Args)]
pub struct ShareArgs {
    /// Let colleagues attach read-only: 127.0.0.1:PORT or a Unix socket path. Prints a
    /// one-time token to give them.
    #[arg(long, value_name = "ADDR")]
    pub share: Option<String>,
    /// Invite a colleague by name, with their own token: NAME (an observer) or
    /// NAME:approver (may approve four-eyes steps). Repeatable. Without any, one shared
    /// token admits observers only.
    #[arg(long, value_name = "NAME[:ROLE]", requires = "share", value_parser = parse_invite)]
    pub invite: Vec<crate::share::InviteSpec>,
    /// Where the invites' attach commands are written, mode 0600 (default: the
    /// transcript's path with `.invites` appended).
    #[arg(long, value_name = "FILE", requires = "share")]
    pub invites_file: Option<PathBuf>,
}

fn parse_invite(s: &str) -> Result<crate::share::InviteSpec, String> {
    s.parse()
}

impl ShareArgs {
    /// The options to share with, if `--share` was given; `allow_remote` is
    /// [`StatusArgs::allow_remote`], the one `--allow-remote` of the command.
    pub fn options(&self, allow_remote: bool) -> Result<Option<ShareOptions>, ShareError> {
        let Some(addr) = &self.share else {
            return Ok(None);
        };
        let mut opts = ShareOptions::new(addr.parse()?);
        opts.allow_remote = allow_remote;
        opts.invites = self.invite.clone();
        opts.invites_file = self.invites_file.clone();
        Ok(Some(opts))
    }
}

/// `cutover attach ADDR --token T --fingerprint SHA256:... [--name N]`.
#[derive(Clone, Debug, Args)]
pub struct AttachArgs {
    /// The driver's --share address (127.0.0.1:PORT, or a Unix socket path).
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// The token the driver's terminal printed (or set CUTOVER_ATTACH_TOKEN, which keeps it
    /// out of the process list).
    #[arg(long, env = "CUTOVER_ATTACH_TOKEN", hide_env_values = true)]
    pub token: AttachToken,
    /// The SHA-256 fingerprint of the driver's TLS certificate, from the attach command its
    /// cockpit shows (T): required for a TCP address, pinned (the connection is refused if
    /// the driver's certificate differs). A Unix socket needs none.
    #[arg(long, value_name = "SHA256:...")]
    pub fingerprint: Option<Fingerprint>,
    /// Your name, as the driver's status bar and your approvals show it, with the shared
    /// observers' token (an invite's token carries its own name).
    #[arg(long, env = "USER")]
    pub name: Option<String>,
    /// Sign your approvals, as a plan with `[share] approvers` requires, with the key the
    /// approvers file lists for you: an unencrypted OpenSSH Ed25519 private key file, or its
    /// `.pub` file when ssh-agent ($SSH_AUTH_SOCK) holds the private half.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Colour theme: a preset name or a theme file (as for the other cockpits).
    #[arg(long, value_name = "NAME|FILE")]
    pub theme: Option<String>,
}

impl AttachArgs {
    /// The address to attach to.
    pub fn share_addr(&self) -> Result<ShareAddr, ShareError> {
        self.addr.parse()
    }
}

/// `cutover verify` arguments.
#[derive(Clone, Debug, Args)]
pub struct VerifyArgs {
    /// The transcript to audit.
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub anchors: AnchorArgs,
}

/// What a transcript is held to, kept apart from it (`verify` and `report`).
#[derive(Clone, Debug, Default, Args)]
pub struct AnchorArgs {
    /// The session's public key, as printed at its end or sent to peers: ed25519:<base64>,
    /// base64, hex, an `ssh-ed25519 ...` line, or a file holding one. A file signed by
    /// another key is FORGED.
    #[arg(long, value_name = "KEY|FILE")]
    pub key: Option<String>,
    /// The transcript's last hash, as printed at the session's end.
    #[arg(long, value_name = "HASH")]
    pub expect_head: Option<String>,
    /// Check a resumed session's link against this file (by default only a file in the
    /// transcript's own directory is followed).
    #[arg(long, value_name = "PATH")]
    pub follow: Option<PathBuf>,
}

impl AnchorArgs {
    /// The typed options; a key that does not parse is an error naming the flag.
    pub fn options(&self) -> anyhow::Result<crate::transcript::verify::VerifyOptions> {
        let key = self
            .key
            .as_deref()
            .map(|k| {
                crate::transcript::PublicKey::from_arg(k).map_err(|e| anyhow::anyhow!("--key: {e}"))
            })
            .transpose()?;
        if let Some(h) = &self.expect_head
            && !(h.trim().len() == 64 && h.trim().bytes().all(|b| b.is_ascii_hexdigit()))
        {
            anyhow::bail!("--expect-head: expected the 64 hex digits of a SHA-256, got \"{h}\"");
        }
        Ok(crate::transcript::verify::VerifyOptions {
            key,
            expect_head: self.expect_head.clone(),
            follow: self.follow.clone(),
        })
    }
}

/// Arguments of `cutover drift`.
#[derive(Args, Clone, Debug)]
pub struct DriftArgs {
    /// Source database URL without a password, e.g. mysql://app@db1:3306/shop
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// Target database URL without a password, e.g. postgres://app@db2:5432/shop?schema=shop
    #[arg(long, value_name = "URL")]
    pub target: String,
    /// Compare only these tables (comma-separated); default: every table of the source
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub tables: Vec<String>,
    /// Print the result as JSON (one array of table readings)
    #[arg(long)]
    pub json: bool,
    /// Environment variable holding the source's password
    #[arg(long, value_name = "VAR")]
    pub source_password_env: Option<String>,
    /// Environment variable holding the target's password
    #[arg(long, value_name = "VAR")]
    pub target_password_env: Option<String>,
    /// File whose first line is the source's password
    #[arg(long, value_name = "FILE")]
    pub source_password_file: Option<PathBuf>,
    /// File whose first line is the target's password
    #[arg(long, value_name = "FILE")]
    pub target_password_file: Option<PathBuf>,
    /// Size chunks so each takes about this long on the slower side
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub chunk_time: Duration,
    /// Chunk queries in flight per database
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub max_concurrent: usize,
    /// Differing keys to report per table
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_keys: usize,
    /// Compare only the rows matching this SQL condition, on both sides (written in the
    /// common part of both dialects), e.g. "region = 'eu'"
    #[arg(long = "where", value_name = "SQL")]
    pub where_sql: Option<String>,
    /// Compare only the recent past: rows whose COLUMN (a date or timestamp every compared
    /// table has) is within DURATION of now, e.g. updated_at=1h
    #[arg(long, value_name = "COLUMN=DURATION", value_parser = crate::db::Since::parse)]
    pub since: Option<crate::db::Since>,
    /// Cross engine: hash rows client-side instead of in the servers (slower; the
    /// reference the pushed-down hash is checked against)
    #[arg(long)]
    pub client_hash: bool,
    /// Write the statements that would make the target equal the source for the differing
    /// rows (REPLACE / INSERT ... ON CONFLICT, DELETE; quoted for the target's engine) to
    /// FILE, for review. Never executed.
    #[arg(long, value_name = "FILE")]
    pub repair_sql: Option<PathBuf>,
    /// Pause before each chunk while the target's replication lag exceeds SECONDS (read
    /// by --lag-query, else from a MySQL/MariaDB replica's status)
    #[arg(long, value_name = "SECONDS")]
    pub max_lag: Option<f64>,
    /// Pause while a server runs more than N queries (MySQL Threads_running, PostgreSQL
    /// active sessions)
    #[arg(long, value_name = "N")]
    pub max_load: Option<u64>,
    /// A query on the target returning its lag in seconds, e.g. from a heartbeat table
    #[arg(long, value_name = "SQL")]
    pub lag_query: Option<String>,
}

/// The report's output format, as the command line spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Md,
    Json,
    Html,
}

impl From<ReportFormat> for Format {
    fn from(f: ReportFormat) -> Format {
        match f {
            ReportFormat::Md => Format::Md,
            ReportFormat::Json => Format::Json,
            ReportFormat::Html => Format::Html,
        }
    }
}

/// `cutover report` arguments.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// The transcript to report on.
    pub file: PathBuf,
    /// Markdown for people, JSON for tools, HTML (one self-contained file with charts) for
    /// a postmortem: `cutover report FILE --format html > report.html`.
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    #[command(flatten)]
    pub anchors: AnchorArgs,
}

/// `cutover replay` arguments.
#[derive(Clone, Debug, Args)]
pub struct ReplayArgs {
    /// The transcript to replay (a `.jsonl` under sessions/).
    pub file: PathBuf,
    /// Playback speed: 0.5, 1, 2, 4, 8, 16, 32 or 64.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Skip stretches with no step, fault, failure or note longer than this many seconds.
    #[arg(long, value_name = "SECS")]
    pub skip_idle: Option<u64>,
    /// Start paused.
    #[arg(long)]
    pub paused: bool,
}

/// `cutover resume` arguments.
#[derive(Clone, Debug, Args)]
pub struct ResumeArgs {
    /// The transcript of the interrupted session.
    pub file: PathBuf,
    /// Colour theme: dark, light, high-contrast, colorblind, or a path to a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Where the new transcript is written.
    #[arg(long, value_name = "DIR", default_value = "sessions")]
    pub sessions_dir: PathBuf,
    /// Who is at the keyboard now. Default: $USER.
    #[arg(long)]
    pub operator: Option<String>,
    /// Resume even though another process holds the transcript's lock (a cockpit that is
    /// still running, or one on another host that cannot be checked). If it is alive, two
    /// cockpits then act on the same systems: stop it first.
    #[arg(long)]
    pub force: bool,
    /// Sign the new transcript with this OpenSSH Ed25519 private key (unencrypted) instead
    /// of a key generated for the session (as for `run` and `rehearse`).
    #[arg(long, value_name = "PATH")]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub share: ShareArgs,
    #[command(flatten)]
    pub status: StatusArgs,
}

impl ResumeArgs {
    /// The operator's signing key, read before anything else is done.
    pub fn sign_key(&self) -> anyhow::Result<Option<crate::transcript::SessionKey>> {
        read_sign_key(self.sign_key.as_deref())
    }
}

/// Reads `--sign-key`: a bad file stops the command before it touches anything.
fn read_sign_key(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<crate::transcript::SessionKey>> {
    path.map(|p| {
        crate::transcript::SessionKey::from_openssh_file(p)
            .map_err(|e| anyhow::anyhow!("--sign-key {e}"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn chaos_takes_a_comma_separated_list() {
        let cli =
            super::Cli::try_parse_from(["cutover", "rehearse", "--chaos", "lag-spike,drop-change"])
                .unwrap();
        match cli.command {
            super::Command::Rehearse(a) => assert_eq!(a.chaos.len(), 2),
            _ => panic!("parsed the wrong command"),
        }
    }
}

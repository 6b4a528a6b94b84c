//! `matrix --html FILE`: the matrix as one self-contained page — the claims, the table of rows ×
//! guarantees × fault classes, and for every counterexample its story, its sequence diagram and a
//! plot of sends, acknowledgements and deliveries over simulated time with the fault windows
//! shaded, as Jepsen's performance plots do. Everything is inline (CSS, SVG): the page fetches
//! nothing, and the same matrix gives the same bytes.
//!
//! Each counterexample is replayed from its seed and shrunk schedule, and its story chosen the
//! way `replay` chooses it ([`mqcheck_sim::trace::story`], [`mqcheck_sim::trace::show`]).

use super::cells::{broken_by_words, Cell, CellVerdict, Class, Counterexample, GUARANTEES};
use super::claims::ClaimVerdict;
use super::render::{repair_lines, summary};
use super::{Matrix, MatrixCmd, Row};
use crate::simulate::{as_it_happened, diagram_heading, story_about};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use mqcheck_brokers::{dispatch, ConfigError, Job, System};
use mqcheck_invariants::{History, Invariant, MsgId, Op};
use mqcheck_sim::trace::{diagram, show, story, Filter};
use mqcheck_sim::{cast, judge, run, Outcome};
use plotters::prelude::*;
use std::collections::BTreeSet;

/// A fault that took effect, from when to when, for the plot's shading.
struct Window {
    from_ms: u64,
    to_ms: u64,
}

/// One counterexample as the page shows it, from its replay.
struct Replayed {
    row: usize,
    guarantee: Invariant,
    class: Class,
    /// The violation the replay of the shrunk schedule found, in words.
    why: Option<String>,
    /// The shrunk schedule as it happened, one fault a line.
    schedule: Vec<String>,
    /// The story's lines, as `replay` prints them.
    story: Vec<String>,
    /// The story as a sequence diagram, the violated property in its title.
    diagram: String,
    /// Sends, acknowledgements and deliveries over the fault windows.
    plot: String,
}

/// Replays one row's counterexamples with the row's own system.
struct Replays<'a> {
    cmd: &'a MatrixCmd,
    index: usize,
    row: &'a Row,
}

impl Job for Replays<'_> {
    type Output = Result<Vec<Replayed>, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let (_, spec, _) = self
            .cmd
            .select::<S>()?
            .into_iter()
            .find(|(s, _, _)| s.name == self.row.configuration)
            .expect("the row was swept from the same selection");
        let system = S::build(&spec.setup.config, spec.setup.workload);
        let the_cast = cast(&system);
        let mut replayed = Vec::new();
        for (guarantee, class, x) in counterexamples(self.row) {
            let r = run(&system, x.seed, &x.schedule, true);
            let violation = judge(&system, &r, &[guarantee])
                .into_iter()
                .find(|v| v.invariant == guarantee);
            let msgs = violation.as_ref().map_or(&[][..], |v| &v.msgs[..]);
            let keep = story(&r.trace, msgs);
            let shown = show(&r.trace, &keep, &Filter::default(), true);
            // Shrinking judges by the checker alone; `judge` also forgives a loss acknowledged
            // just before a cut-short run's end.
            let mut title = diagram_heading(
                &self.row.broker,
                &self.row.settings,
                &class.faults().to_string(),
                violation.as_ref(),
                format!("{guarantee}: the replay did not violate it"),
            );
            title.push(format!(
                "seed {}, the shrunk schedule, {}",
                x.seed,
                story_about(msgs)
            ));
            let windows: Vec<Window> = x
                .schedule
                .faults
                .iter()
                .zip(&r.outcomes)
                .filter_map(|(f, outcome)| match outcome {
                    Outcome::Took { until_ms, .. } => Some(Window {
                        from_ms: f.at_ms,
                        to_ms: *until_ms,
                    }),
                    Outcome::NoEffect(_) | Outcome::NotStarted => None,
                })
                .collect();
            replayed.push(Replayed {
                why: violation
                    .as_ref()
                    .map(|v| format!("{}: {}", v.kind.name(), v.explanation)),
                row: self.index,
                guarantee,
                class,
                schedule: as_it_happened(&x.schedule, &r.outcomes, &the_cast)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .collect(),
                story: shown.iter().map(ToString::to_string).collect(),
                diagram: diagram(title, &r.trace, &shown).svg(),
                plot: plot(&r.history, msgs, &windows),
            });
        }
        Ok(replayed)
    }
}

/// A row's counterexamples in the page's order: guarantee by guarantee, class by class.
fn counterexamples(row: &Row) -> impl Iterator<Item = (Invariant, Class, &Counterexample)> {
    GUARANTEES.into_iter().flat_map(move |g| {
        row.cells.get(g.name()).into_iter().flat_map(move |cells| {
            cells
                .iter()
                .filter_map(move |(class, cell)| Some((g, *class, cell.counterexample.as_ref()?)))
        })
    })
}

/// The page for `m`: every counterexample replayed (the rows' systems rebuilt from `cmd`).
pub fn page(cmd: &MatrixCmd, m: &Matrix) -> Result<String, ConfigError> {
    let mut replayed = Vec::new();
    for (index, row) in m.rows.iter().enumerate() {
        replayed.extend(dispatch(&row.broker, Replays { cmd, index, row })??);
    }
    Ok(render(m, &replayed).into_string())
}

/// The anchor of a counterexample: its row, guarantee and class.
fn anchor(row: usize, guarantee: Invariant, class: Class) -> String {
    format!("cx-{row}-{}-{}", guarantee.name(), class.name())
}

/// Text with Markdown's code spans (`` `acks=all` ``, as the claims write settings) as code.
fn prose(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

fn verdict_class(cell: &Cell) -> &'static str {
    match cell.verdict {
        CellVerdict::Held => "held",
        CellVerdict::Broken => "broken",
        CellVerdict::Inconclusive => "inconclusive",
        CellVerdict::NotTested => "not-tested",
        CellVerdict::NotSupported => "not-supported",
    }
}

const CSS: &str = "
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre.story { background: #f6f6f4; padding: .6em .8em; overflow-x: auto; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; vertical-align: top; text-align: left; }
th { background: #f0f0ee; }
td.held, span.confirmed { background: #e3f4e1; }
td.broken, span.refuted { background: #fbe3e0; }
td.inconclusive, span.conditional { background: #fdf3d6; }
td.not-tested, td.not-supported { color: #999; }
td a { color: inherit; }
span.confirmed, span.refuted, span.conditional { padding: 0 .3em; font-weight: 600; }
article.counterexample { border-top: 2px solid #ddd; margin-top: 2em; }
figure { margin: 1em 0; overflow-x: auto; }
figcaption { font-size: 13px; color: #555; }
";

fn render(m: &Matrix, replayed: &[Replayed]) -> Markup {
    let shown: BTreeSet<String> = replayed
        .iter()
        .map(|x| anchor(x.row, x.guarantee, x.class))
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "mqcheck · the claims matrix" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "The claims matrix" }
                p { "Generated by " code { (m.command) } " · " (m.seeds)
                    " seeds per row and fault class. The same command writes the same page." }
                (claims(m))
                (rows(m))
                (cells(m, &shown))
                @let repairs = repair_lines(m);
                @if !repairs.is_empty() {
                    section #repairs {
                        h2 { "Repairs" }
                        p { "The smallest changes of the broker's keys under which the class no longer breaks the guarantee in any seed (" code { "--repair" } "):" }
                        ul { @for line in &repairs { li { (prose(line)) } } }
                    }
                }
                section #counterexamples {
                    h2 { "Counterexamples" }
                    @if replayed.is_empty() {
                        p { "No counterexample: no cell was broken." }
                    }
                    @for x in replayed {
                        (counterexample(m, x))
                    }
                }
            }
        }
    }
}

fn claims(m: &Matrix) -> Markup {
    html! {
        section #claims {
            h2 { "The article's claims" }
            table.claims {
                tr { th { "broker" } th { "the article says" } th { "verdict" } th { "conditions and evidence" } }
                @for c in &m.claims {
                    @let class = match c.verdict {
                        ClaimVerdict::Confirmed => "confirmed",
                        ClaimVerdict::Refuted => "refuted",
                        ClaimVerdict::Conditional => "conditional",
                        ClaimVerdict::NotTested => "not-tested",
                    };
                    tr {
                        td { (c.broker) }
                        td { (c.claim) }
                        td { span class=(class) { (c.verdict.name()) } }
                        td { (prose(&c.explanation)) }
                    }
                }
            }
        }
    }
}

fn rows(m: &Matrix) -> Markup {
    html! {
        section #rows {
            h2 { "Rows" }
            table.rows {
                tr {
                    th { "broker" } th { "configuration" } th { "settings" } th { "claim tested" }
                    @for g in GUARANTEES { th { (g.name()) } }
                }
                @for r in &m.rows {
                    tr {
                        td { (r.broker) }
                        td { (r.configuration) }
                        td {
                            @if r.settings.is_empty() { "defaults" }
                            @for s in &r.settings { code { (s) } " " }
                        }
                        td { (r.claim) }
                        @for g in GUARANTEES {
                            td { (r.cells.get(g.name()).map_or("—".into(), summary)) }
                        }
                    }
                }
            }
        }
    }
}

fn cells(m: &Matrix, shown: &BTreeSet<String>) -> Markup {
    html! {
        section #cells {
            h2 { "Cells by fault class" }
            table #matrix .cells {
                tr {
                    th { "broker" } th { "configuration" } th { "guarantee" }
                    @for c in &m.classes { th { (c.name()) } }
                }
                @for (i, r) in m.rows.iter().enumerate() {
                    @for g in GUARANTEES {
                        @if let Some(by_class) = r.cells.get(g.name()) {
                            tr {
                                td { (r.broker) }
                                td { (r.configuration) }
                                td { (g.name()) }
                                @for class in &m.classes {
                                    @if let Some(cell) = by_class.get(class) {
                                        @let id = anchor(i, g, *class);
                                        td class=(verdict_class(cell)) title=[cell.reason.as_deref()] {
                                            @if shown.contains(&id) {
                                                a href=(format!("#{id}")) { (cell.text()) }
                                            } @else {
                                                (cell.text())
                                            }
                                        }
                                    } @else {
                                        td { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn counterexample(m: &Matrix, x: &Replayed) -> Markup {
    let row = &m.rows[x.row];
    let cell = &row.cells[x.guarantee.name()][&x.class];
    let c = cell
        .counterexample
        .as_ref()
        .expect("a replayed cell has its counterexample");
    html! {
        article.counterexample id=(anchor(x.row, x.guarantee, x.class)) {
            h3 {
                (row.broker) " · " (row.configuration) " · " (x.guarantee.name())
                " violated under " (x.class.name()) ": " (c.kind)
            }
            p { "In the sweep's run: " (prose(&c.explanation)) }
            p {
                "In the replay of the shrunk schedule: "
                @match &x.why {
                    Some(why) => (why),
                    None => "not violated: shrinking asks the checker alone, and the replay \
                             forgives, in a run cut short, a loss the consumers never read past",
                }
            }
            p {
                "Broken " (broken_by_words(&c.broken_by)) " in " (cell.violations) " of "
                (cell.runs) " seeds; seed " (c.seed) ", replayed with its shrunk schedule. "
                "Replay its drawn schedule: " code { (c.replay) }
            }
            h4 { "The shrunk schedule, as it happened" }
            ul.schedule {
                @for line in &x.schedule { li { (line) } }
            }
            h4 { "The story" }
            pre.story { @for line in &x.story { (line) "\n" } }
            figure.diagram {
                (PreEscaped(&x.diagram))
                figcaption { "The story as a sequence diagram: an arrow per message, a red dot per fault, a grey band per run of steps left out." }
            }
            figure.plot {
                (PreEscaped(&x.plot))
                figcaption {
                    "Sends, acknowledgements and deliveries (cumulative) over simulated time; "
                    "shaded: the windows of the faults that took effect."
                }
            }
        }
    }
}

const SENDS: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const ACKS: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const DELIVERIES: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
/// The fault windows' shade (Jepsen's nemesis colour), drawn translucent.
const FAULT: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Room right of the plotting area for the legend, so it never hides a line.
const LEGEND_PX: u32 = 190;

/// One line of the plot: a count going up by one at each of its events.
struct Series {
    name: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
    /// Where the violation's messages are on it.
    marks: Vec<(f64, f64)>,
}

/// Sends, acknowledgements and deliveries, each counted up over simulated time, the fault
/// windows shaded and the violation's messages marked: an SVG. Time runs to the last event or
/// the end of the last fault window, whichever is later (the drain's quiet tail left out).
fn plot(history: &History, msgs: &[MsgId], windows: &[Window]) -> String {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let mut series = [
        ("sends", SENDS),
        ("acknowledgements", ACKS),
        ("deliveries", DELIVERIES),
    ]
    .map(|(name, color)| Series {
        name,
        color,
        points: vec![(0.0, 0.0)],
        marks: Vec::new(),
    });
    let mut last_ms = windows.iter().map(|w| w.to_ms).max().unwrap_or(0);
    for e in &history.events {
        let (i, msg) = match &e.op {
            Op::Send { msg, .. } => (0, msg),
            Op::Ack { msg } => (1, msg),
            Op::Deliver { msg, .. } => (2, msg),
            _ => continue,
        };
        let s = &mut series[i];
        let n = s.points.last().map_or(0.0, |p| p.1);
        let t = secs(e.time_ms);
        s.points.extend([(t, n), (t, n + 1.0)]);
        if msgs.contains(msg) {
            s.marks.push((t, n + 1.0));
        }
        last_ms = last_ms.max(e.time_ms);
    }
    let end = (secs(last_ms) * 1.05).max(1.0);
    for s in &mut series {
        let n = s.points.last().map_or(0.0, |p| p.1);
        s.points.push((end, n));
    }
    let top = series
        .iter()
        .map(|s| s.points.last().map_or(0.0, |p| p.1))
        .fold(1.0, f64::max)
        * 1.05;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 300)).into_drawing_area();
        draw(&root, &series, windows, end, top).expect("drawing into a string does not fail");
        root.present().expect("drawing into a string does not fail");
    }
    svg
}

fn draw<'a>(
    root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>,
    series: &[Series],
    windows: &[Window],
    end: f64,
    top: f64,
) -> Result<(), DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>> {
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_PX);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..end, 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc("messages")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .max_light_lines(0)
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()?;
    let shade = FAULT.mix(0.18).filled();
    chart.draw_series(windows.iter().map(|w| {
        Rectangle::new(
            [
                (w.from_ms as f64 / 1000.0, 0.0),
                (w.to_ms as f64 / 1000.0, top),
            ],
            shade,
        )
    }))?;
    for s in series {
        chart.draw_series(LineSeries::new(
            s.points.iter().copied(),
            s.color.stroke_width(2),
        ))?;
    }
    let marks: Vec<(f64, f64)> = series.iter().flat_map(|s| s.marks.clone()).collect();
    chart.draw_series(marks.iter().map(|p| Circle::new(*p, 4, BLACK.filled())))?;
    // The legend beside the plotting area, one entry a line: what is drawn, how.
    let text = ("sans-serif", 13).into_font();
    let mut y = 24;
    let mut entry = |glyph: &dyn Fn(i32) -> Result<(), _>, label: &str| {
        glyph(y)?;
        legend_area.draw(&Text::new(label.to_string(), (28, y - 7), text.clone()))?;
        y += 20;
        Ok(())
    };
    if !windows.is_empty() {
        entry(
            &|y| legend_area.draw(&Rectangle::new([(6, y - 6), (20, y + 6)], shade)),
            "fault window",
        )?;
    }
    for s in series {
        let color = s.color;
        entry(
            &|y| legend_area.draw(&PathElement::new([(6, y), (20, y)], color.stroke_width(2))),
            s.name,
        )?;
    }
    if !marks.is_empty() {
        entry(
            &|y| legend_area.draw(&Circle::new((13, y), 4, BLACK.filled())),
            "the violation's messages",
        )?;
    }
    Ok(())
}

//! Sequence diagrams of a run's story, as SVG: one lifeline per node, one row per step — an arrow
//! per message, a red dot per fault, a small dot per event at a node, a grey band per run of
//! folded steps — each row labelled in the broker's words beside the lifelines, under a title that
//! names the broker, its configuration and the violated property.
//!
//! The drawing knows nothing of brokers, the model checker or the simulator: `check --svg` and the
//! Explorer (a stateright path), `replay --svg` (a simulated trace) and the matrix's HTML report
//! each turn their story into [`Row`]s and draw them here. It is as wide as its longest label and
//! as tall as its rows, so a story folded to a few dozen rows stays renderable. The document is
//! composed with the `svg` crate, which escapes text and writes attributes in a fixed order, so the
//! same diagram is the same bytes.

use svg::node::element::{Circle, Line, Polygon, Rectangle, Text};
use svg::Document;

/// A diagram: its title lines, its lifelines (node names, left to right) and its rows, top to
/// bottom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagram {
    pub title: Vec<String>,
    pub lanes: Vec<String>,
    pub rows: Vec<Row>,
}

/// One row of a diagram; lanes are indices into [`Diagram::lanes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// A message delivered from one node to others (the same message heard by several): an
    /// arrow to each.
    Message {
        from: usize,
        to: Vec<usize>,
        label: String,
    },
    /// A fault that hit nodes (a crash, a power loss, a pause, an isolation): a red dot on each.
    Fault { lanes: Vec<usize>, label: String },
    /// Something nodes did or saw on their own (a restart, an application's ack): a small dot on
    /// each.
    Event { lanes: Vec<usize>, label: String },
    /// A step that belongs to no one node (a heal): its label only.
    Note { label: String },
    /// Steps left out of the story: a grey band and its summary.
    Folded { label: String },
}

impl Row {
    fn label(&self) -> &str {
        match self {
            Row::Message { label, .. }
            | Row::Fault { label, .. }
            | Row::Event { label, .. }
            | Row::Note { label }
            | Row::Folded { label } => label,
        }
    }
}

/// Width of a lifeline's column.
const COL: usize = 70;
/// Height of a row.
const ROW: usize = 20;
/// Monospace advance at 11 px is 0.6 em; a little more, so no label is clipped.
const CHAR: usize = 7;
/// The same at the title's 13 px.
const TITLE_CHAR: usize = 8;

impl Diagram {
    /// The diagram as an SVG document.
    pub fn svg(&self) -> String {
        let lanes = COL * self.lanes.len();
        let longest = |texts: &mut dyn Iterator<Item = &str>| {
            texts.map(|t| t.chars().count()).max().unwrap_or(0)
        };
        let labels = longest(&mut self.rows.iter().map(Row::label));
        let titles = longest(&mut self.title.iter().map(String::as_str));
        let width = (lanes + 10 + CHAR * labels + 10).max(TITLE_CHAR * titles + 20);
        let names_y = 22 * self.title.len() + 24;
        let top = names_y + 16;
        let height = top + ROW * (self.rows.len() + 1);
        let x = |lane: usize| COL / 2 + COL * lane;

        let mut doc = Document::new()
            .set("width", width)
            .set("height", height)
            .set("font-family", "monospace")
            .set("font-size", 11)
            .add(
                Rectangle::new()
                    .set("width", width)
                    .set("height", height)
                    .set("fill", "white"),
            );
        for (i, line) in self.title.iter().enumerate() {
            doc = doc.add(
                Text::new(line.as_str())
                    .set("x", 10)
                    .set("y", 22 * (i + 1))
                    .set("font-size", 13)
                    .set("font-weight", "bold"),
            );
        }
        for (i, name) in self.lanes.iter().enumerate() {
            doc = doc
                .add(
                    Text::new(name.as_str())
                        .set("x", x(i))
                        .set("y", names_y)
                        .set("text-anchor", "middle")
                        .set("font-weight", "bold"),
                )
                .add(
                    Line::new()
                        .set("x1", x(i))
                        .set("y1", names_y + 6)
                        .set("x2", x(i))
                        .set("y2", height)
                        .set("stroke", "#bbb"),
                );
        }
        for (i, row) in self.rows.iter().enumerate() {
            let y = top + ROW * (i + 1);
            let dots = |doc: Document, lanes: &[usize], r: usize, fill: &str| {
                lanes.iter().fold(doc, |doc, lane| {
                    doc.add(
                        Circle::new()
                            .set("cx", x(*lane))
                            .set("cy", y - 4)
                            .set("r", r)
                            .set("fill", fill),
                    )
                })
            };
            let mut label = Text::new(row.label()).set("x", lanes + 10).set("y", y);
            match row {
                Row::Message { from, to, .. } => {
                    for to in to {
                        let (x1, y1, x2) = (x(*from), y - ROW / 2, x(*to));
                        doc = doc
                            .add(
                                Line::new()
                                    .set("class", "arrow")
                                    .set("x1", x1)
                                    .set("y1", y1)
                                    .set("x2", x2)
                                    .set("y2", y)
                                    .set("stroke", "#333"),
                            )
                            .add(head((x1, y1), (x2, y)));
                    }
                }
                Row::Fault { lanes, .. } => doc = dots(doc, lanes, 6, "#c00"),
                Row::Event { lanes, .. } => doc = dots(doc, lanes, 3, "#36c"),
                Row::Note { .. } => {}
                Row::Folded { .. } => {
                    doc = doc.add(
                        Rectangle::new()
                            .set("x", 0)
                            .set("y", y - ROW + 6)
                            .set("width", lanes)
                            .set("height", ROW - 4)
                            .set("fill", "#eee"),
                    );
                    label = label.set("fill", "#777");
                }
            }
            doc = doc.add(label);
        }
        doc.to_string() + "\n"
    }
}

/// An arrow's head at `to`, pointing away from `from`: drawn inline rather than as a shared
/// `<marker>`, so that several diagrams on one page share no element id.
fn head(from: (usize, usize), to: (usize, usize)) -> Polygon {
    const LENGTH: f64 = 8.0;
    const HALF_WIDTH: f64 = 4.0;
    let (x1, y1, x2, y2) = (from.0 as f64, from.1 as f64, to.0 as f64, to.1 as f64);
    let length = (x2 - x1).hypot(y2 - y1).max(1.0);
    let (dx, dy) = ((x2 - x1) / length, (y2 - y1) / length);
    let (bx, by) = (x2 - LENGTH * dx, y2 - LENGTH * dy);
    let point = |x: f64, y: f64| format!("{x:.1},{y:.1}");
    Polygon::new().set("fill", "#333").set(
        "points",
        [
            point(x2, y2),
            point(bx - HALF_WIDTH * dy, by + HALF_WIDTH * dx),
            point(bx + HALF_WIDTH * dy, by - HALF_WIDTH * dx),
        ]
        .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagram() -> Diagram {
        Diagram {
            title: vec!["kafka acks=1".into(), "VIOLATED at-least-once".into()],
            lanes: vec!["n1".into(), "n2".into(), "p0".into()],
            rows: vec![
                Row::Message {
                    from: 2,
                    to: vec![0],
                    label: "Produce p0:0 <acks=1>".into(),
                },
                Row::Folded {
                    label: "… 40 steps folded".into(),
                },
                Row::Fault {
                    lanes: vec![0, 1],
                    label: "n1, n2 crash".into(),
                },
                Row::Event {
                    lanes: vec![1],
                    label: "n2 restarts".into(),
                },
                Row::Note {
                    label: "the partition heals".into(),
                },
            ],
        }
    }

    #[test]
    fn each_row_is_drawn_and_its_text_escaped() {
        let svg = diagram().svg();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("Produce p0:0 &lt;acks=1&gt;"), "{svg}");
        assert!(!svg.contains("<acks=1>"), "{svg}");
        assert_eq!(
            svg.matches("class=\"arrow\"").count(),
            1,
            "one arrow: {svg}"
        );
        assert_eq!(svg.matches("<polygon").count(), 1, "its head: {svg}");
        assert!(
            !svg.contains(" id="),
            "no element ids, so diagrams can share a page"
        );
        assert_eq!(
            svg.matches("fill=\"#c00\"").count(),
            2,
            "a fault on two nodes: {svg}"
        );
        assert_eq!(svg.matches("fill=\"#36c\"").count(), 1, "one event: {svg}");
        assert_eq!(svg.matches("fill=\"#eee\"").count(), 1, "one fold: {svg}");
        for text in [
            "VIOLATED at-least-once",
            "n2 restarts",
            "the partition heals",
        ] {
            assert!(svg.contains(text), "{text}: {svg}");
        }
    }

    #[test]
    fn the_drawing_is_as_tall_as_its_rows_and_as_wide_as_its_longest_label() {
        let mut d = diagram();
        let size = |svg: &str, attr: &str| -> usize {
            let at = svg.find(&format!(" {attr}=\"")).expect(attr) + attr.len() + 3;
            svg[at..].split('"').next().unwrap().parse().unwrap()
        };
        let (w, h) = (size(&d.svg(), "width"), size(&d.svg(), "height"));
        d.rows.push(Row::Note {
            label: "x".repeat(200),
        });
        let svg = d.svg();
        assert_eq!(size(&svg, "height"), h + ROW);
        assert!(size(&svg, "width") >= 3 * COL + CHAR * 200, "{w}");
        assert_eq!(svg, d.svg(), "the same diagram is the same bytes");
    }
}

//! Reading the SVG sequence diagrams that `check --svg` and `replay --svg` draw.

/// Every `<text>` of a diagram, in order. None is a Rust `Debug` form (`FetchResponse {`), nor a
/// node id (`Id(2)`), and each fits within the drawing: 7 px a character covers the 0.6 em
/// advance of 11 px monospace, from where it starts.
pub fn labels(svg: &str) -> Vec<String> {
    let width: usize = svg
        .split_once(" width=\"")
        .and_then(|(_, rest)| rest.split('"').next()?.parse().ok())
        .expect("the drawing's width");
    let mut labels = Vec::new();
    for element in svg.split("<text ").skip(1) {
        let (attributes, rest) = element.split_once('>').unwrap();
        // The svg crate puts a text element's content on a line of its own.
        let text = rest
            .split_once("</text>")
            .unwrap()
            .0
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let x: usize = format!(" {attributes}")
            .split_once(" x=\"")
            .and_then(|(_, rest)| rest.split('"').next()?.parse().ok())
            .unwrap();
        assert!(
            !text.contains('{') && !text.contains("Id("),
            "Debug output: {text}"
        );
        if !attributes.contains("text-anchor=\"middle\"") {
            assert!(
                x + 7 * text.chars().count() <= width,
                "clipped at {width} px: {text}"
            );
        }
        labels.push(text);
    }
    labels
}

/// A row of a diagram: `12. n1 → p0: ProduceResponse …`.
pub fn is_row(label: &str) -> bool {
    label
        .split_once(". ")
        .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
}

/// Renders a diagram with a real SVG renderer (resvg): it parses, has a size in pixels, and
/// draws something on its white ground. Its size.
pub fn render(svg: &str) -> (u32, u32) {
    let tree = resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default())
        .unwrap_or_else(|e| panic!("resvg refuses the drawing: {e}"));
    let size = tree.size().to_int_size();
    let (width, height) = (size.width(), size.height());
    assert!(width > 0 && height > 0, "{width}x{height}");
    let mut pixmap = resvg::tiny_skia::Pixmap::new(width, height)
        .unwrap_or_else(|| panic!("no pixmap of {width}x{height}"));
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    let pixels = pixmap.pixels();
    assert!(
        pixels.iter().any(|p| p.alpha() == 255 && p.red() < 128),
        "lines are drawn"
    );
    assert!(pixels.iter().all(|p| p.alpha() == 255), "on a white ground");
    (width, height)
}

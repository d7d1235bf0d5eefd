//! Figures of labelled tiles: a title, column headers, and tiles of side-by-side panels with
//! coloured caption lines, laid out in a grid, with a colour bar. Text is drawn with DejaVu Sans,
//! embedded in the binary (`assets/fonts/`, Bitstream Vera license).

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage, imageops};
use imageproc::drawing::{draw_filled_rect_mut, draw_text_mut, text_size};
use imageproc::rect::Rect;

use super::overlay::Colormap;

/// DejaVu Sans, from Debian's `fonts-dejavu-core`.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The embedded font.
fn font() -> FontRef<'static> {
    // The bytes are a fixed asset checked by the tests; failing to parse them is a build defect.
    FontRef::try_from_slice(FONT_BYTES).expect("the embedded DejaVu Sans parses")
}

/// Text colours.
pub const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
/// A correct prediction.
pub const GREEN: Rgb<u8> = Rgb([0, 120, 0]);
/// A wrong prediction.
pub const RED: Rgb<u8> = Rgb([200, 0, 0]);
/// Secondary text.
pub const GREY: Rgb<u8> = Rgb([90, 90, 90]);
const WHITE: Rgb<u8> = Rgb([255, 255, 255]);

/// Pixel width of `text` at `size` pixels.
pub fn text_width(size: f32, text: &str) -> u32 {
    text_size(PxScale::from(size), &font(), text).0
}

/// `text`, shortened with an ellipsis to fit `max_width` pixels at `size`.
pub fn fit(size: f32, text: &str, max_width: u32) -> String {
    if text_width(size, text) <= max_width {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (0..chars.len()).rev() {
        let candidate: String = chars[..keep].iter().collect::<String>() + "…";
        if text_width(size, &candidate) <= max_width {
            return candidate;
        }
    }
    String::new()
}

/// Draws `text` with its top-left corner at `(x, y)`.
pub fn draw_text(canvas: &mut RgbImage, x: i32, y: i32, size: f32, color: Rgb<u8>, text: &str) {
    draw_text_mut(canvas, color, x, y, PxScale::from(size), &font(), text);
}

/// One line of a caption.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The text.
    pub text: String,
    /// Its colour.
    pub color: Rgb<u8>,
}

impl Line {
    /// A line of `text` in `color`.
    pub fn new(text: impl Into<String>, color: Rgb<u8>) -> Self {
        Self {
            text: text.into(),
            color,
        }
    }
}

/// Panels of equal size side by side, with caption lines under them.
#[derive(Clone, Debug)]
pub struct Tile {
    /// The pictures, left to right.
    pub panels: Vec<RgbImage>,
    /// Caption lines, under the panels.
    pub caption: Vec<Line>,
}

/// A figure: title lines, one header per panel column, tiles in rows of `columns`.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Lines at the top.
    pub title: Vec<Line>,
    /// A header over each panel of a tile (drawn once per tile column).
    pub headers: Vec<String>,
    /// The tiles, filled row by row.
    pub tiles: Vec<Tile>,
    /// Tiles per row.
    pub columns: usize,
    /// The colour map of the heat maps, for the colour bar.
    pub colormap: Colormap,
}

const MARGIN: u32 = 12;
const PANEL_GAP: u32 = 2;
const TILE_GAP_X: u32 = 18;
const TILE_GAP_Y: u32 = 10;

impl Figure {
    /// Draws the figure. Every panel of every tile must have the size of the first.
    pub fn render(&self) -> RgbImage {
        let Some(first) = self.tiles.first().and_then(|t| t.panels.first()) else {
            return self.render_empty();
        };
        let (pw, ph) = first.dimensions();
        let panels = self.tiles.iter().map(|t| t.panels.len()).max().unwrap_or(1) as u32;
        let columns = self.columns.clamp(1, self.tiles.len()) as u32;
        let rows = self.tiles.len().div_ceil(columns as usize) as u32;
        let tile_w = panels * pw + (panels - 1) * PANEL_GAP;
        // Text scales with the panels, within readable bounds.
        let text = (ph as f32 / 9.0).clamp(11.0, 18.0);
        let line_h = (text * 1.3).ceil() as u32;
        let title_text = text + 3.0;
        let title_line_h = (title_text * 1.3).ceil() as u32;
        let caption_lines = self
            .tiles
            .iter()
            .map(|t| t.caption.len())
            .max()
            .unwrap_or(0) as u32;
        let tile_h = ph + 4 + caption_lines * line_h;

        let bar_w = 180u32.min(tile_w);
        let width = (2 * MARGIN + columns * tile_w + (columns - 1) * TILE_GAP_X)
            .max(2 * MARGIN + bar_w + 120);
        let title_h = self.title.len() as u32 * title_line_h + 6;
        let bar_h = line_h + 12;
        let header_h = if self.headers.is_empty() {
            0
        } else {
            line_h + 2
        };
        let top = MARGIN + title_h.max(bar_h) + header_h;
        let height = top + rows * tile_h + (rows - 1) * TILE_GAP_Y + MARGIN;

        let mut canvas = RgbImage::from_pixel(width, height, WHITE);
        let title_width = width - 3 * MARGIN - bar_w;
        for (i, line) in self.title.iter().enumerate() {
            let y = MARGIN + i as u32 * title_line_h;
            let shown = fit(title_text, &line.text, title_width);
            draw_text(
                &mut canvas,
                MARGIN as i32,
                y as i32,
                title_text,
                line.color,
                &shown,
            );
        }
        self.color_bar(&mut canvas, width - MARGIN - bar_w, MARGIN, bar_w, text);

        for c in 0..columns {
            let x0 = MARGIN + c * (tile_w + TILE_GAP_X);
            for (p, header) in self.headers.iter().enumerate().take(panels as usize) {
                let x = x0 + p as u32 * (pw + PANEL_GAP);
                let shown = fit(text, header, pw);
                let dx = (pw - text_width(text, &shown).min(pw)) / 2;
                draw_text(
                    &mut canvas,
                    (x + dx) as i32,
                    (top - header_h) as i32,
                    text,
                    BLACK,
                    &shown,
                );
            }
        }
        for (i, tile) in self.tiles.iter().enumerate() {
            let (c, r) = (i as u32 % columns, i as u32 / columns);
            let x0 = MARGIN + c * (tile_w + TILE_GAP_X);
            let y0 = top + r * (tile_h + TILE_GAP_Y);
            for (p, panel) in tile.panels.iter().enumerate() {
                let x = x0 + p as u32 * (pw + PANEL_GAP);
                imageops::replace(&mut canvas, panel, x as i64, y0 as i64);
            }
            for (l, line) in tile.caption.iter().enumerate() {
                let y = y0 + ph + 3 + l as u32 * line_h;
                let shown = fit(text, &line.text, tile_w);
                draw_text(&mut canvas, x0 as i32, y as i32, text, line.color, &shown);
            }
        }
        canvas
    }

    /// A figure with no tile: its title and a note.
    fn render_empty(&self) -> RgbImage {
        let size = 16.0;
        let mut lines = self.title.clone();
        lines.push(Line::new("(no samples)", GREY));
        let width = lines
            .iter()
            .map(|l| text_width(size, &l.text))
            .max()
            .unwrap_or(0)
            + 2 * MARGIN;
        let line_h = (size * 1.3).ceil() as u32;
        let mut canvas = RgbImage::from_pixel(
            width.max(200),
            2 * MARGIN + lines.len() as u32 * line_h,
            WHITE,
        );
        for (i, line) in lines.iter().enumerate() {
            draw_text(
                &mut canvas,
                MARGIN as i32,
                (MARGIN + i as u32 * line_h) as i32,
                size,
                line.color,
                &line.text,
            );
        }
        canvas
    }

    /// The colour bar: the colour map from 0 to 1 of each image's own maximum.
    fn color_bar(&self, canvas: &mut RgbImage, x: u32, y: u32, w: u32, text: f32) {
        let h = 10;
        for dx in 0..w {
            let color = self.colormap.color(dx as f32 / (w - 1).max(1) as f32);
            draw_filled_rect_mut(
                canvas,
                Rect::at((x + dx) as i32, y as i32).of_size(1, h),
                color,
            );
        }
        let y_text = (y + h + 2) as i32;
        draw_text(canvas, x as i32, y_text, text, GREY, "0");
        let label = "1 = image's max";
        let lw = text_width(text, label);
        draw_text(
            canvas,
            (x + w).saturating_sub(lw) as i32,
            y_text,
            text,
            GREY,
            label,
        );
    }
}

//! How a p-value is printed, everywhere (report tables, `compare`'s figures and its terminal
//! output): no digits below what a double resolves, no "p = < ...".

/// The p-value as a number for a table cell: `0.0433`, `4.97e-5`, or `< 1e-16` (below what a
/// double near 1 resolves, so no digits are claimed).
pub fn p_cell(p: f64) -> String {
    if p < 1e-16 {
        "< 1e-16".to_string()
    } else if p < 1e-3 {
        format!("{p:.2e}")
    } else {
        format!("{p:.4}")
    }
}

/// The p-value in a sentence: `p = 0.0433`, `p = 4.97e-5`, `p < 1e-16`.
pub fn format_p(p: f64) -> String {
    let cell = p_cell(p);
    if cell.starts_with('<') {
        format!("p {cell}")
    } else {
        format!("p = {cell}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_print_without_false_digits() {
        assert_eq!(format_p(0.043308), "p = 0.0433");
        assert_eq!(format_p(0.002836), "p = 0.0028");
        assert_eq!(format_p(4.9713e-5), "p = 4.97e-5");
        assert_eq!(format_p(1e-300), "p < 1e-16");
        assert_eq!(p_cell(1.0), "1.0000");
        assert_eq!(p_cell(1e-17), "< 1e-16");
    }
}

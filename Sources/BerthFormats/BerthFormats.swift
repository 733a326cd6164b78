// BerthFormats: see ARCHITECTURE.md

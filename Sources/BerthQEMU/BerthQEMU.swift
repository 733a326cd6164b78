// BerthQEMU: see ARCHITECTURE.md

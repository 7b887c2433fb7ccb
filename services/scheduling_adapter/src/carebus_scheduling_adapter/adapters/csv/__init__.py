"""CSV appointment exports: the column layout, row mapping and file reading."""

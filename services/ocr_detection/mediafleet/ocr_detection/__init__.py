"""OCR service: easyocr and RapidOCR engines behind one runner, served over HTTP and as an RQ worker."""

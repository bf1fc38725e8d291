"""The error-analysis report: numbers (errors), figures (figures), the page (page), all put together by
build.write_report for `tokclf evaluate --report` and the end of training."""

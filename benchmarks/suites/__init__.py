"""Built-in sweep suites (YAML files only); a package so that installs ship them."""

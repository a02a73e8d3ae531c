"""appliancectl: the IT / integration engineer's command line."""

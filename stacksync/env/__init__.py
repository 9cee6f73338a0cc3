"""Target environments: probes, site-packages and dist-info reading, RECORD, damage, journal, manifests, diff."""

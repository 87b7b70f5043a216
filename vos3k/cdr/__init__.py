"""CDRs: record and pipe format, policy, durable writer, files, feed, query."""

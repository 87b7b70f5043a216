"""Sans-IO SIP: messages, SDP, transactions, dialogs, digest auth, registrar."""

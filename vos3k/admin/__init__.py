"""The SSH/Telnet admin shell."""

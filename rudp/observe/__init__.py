"""What rudp lets you watch: structured log events (and, later, pcap and stats)."""

"""What rudp lets you watch: structured log events, pcap captures, statistics."""

"""pgship measured side by side with its peers: workload, peers, timing and reports for bench/peers.py."""

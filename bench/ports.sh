# Sourced by the bench scripts: free_port prints a loopback port nobody
# listens on now (the caller retries its start if the port is taken between
# this probe and its bind). Needs the caller's `die`.
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free loopback port found"
}

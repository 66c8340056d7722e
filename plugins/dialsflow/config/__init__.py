"""What the user configures, validated before any request: connections, jobs, inputs."""

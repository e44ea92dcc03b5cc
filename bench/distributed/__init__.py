"""Running the suite on a Ray cluster (the optional ``ray`` extra): connecting to it or starting
a local instance, the nodes it holds and their kinds, and an executor that runs each method
configuration as a Ray task with its thread count reserved."""

"""Known values for the tests of src/stats/ (power, seed_test, multiplicity, factorial): run once
with scipy and statsmodels (a venv of their own: `pip install scipy statsmodels`); the figures are
stored in the Rust tests, which cite this script. Printed with repr() so that every digit shows.
"""
import numpy as np, scipy.stats as st
from statsmodels.stats.power import TTestPower
from statsmodels.stats.multitest import multipletests
import statsmodels.api as sm
# power of a paired (one-sample) t test
tp = TTestPower()
for es, n in [(0.5, 10), (1.0, 5), (2.0, 3), (0.3, 40)]:
    print("power", es, n, repr(tp.power(effect_size=es, nobs=n, alpha=0.05, alternative='two-sided')))
for es in [0.5, 1.0, 0.25]:
    print("nobs", es, repr(tp.solve_power(effect_size=es, power=0.8, alpha=0.05, alternative='two-sided')))
for n in [2, 3, 10]:
    print("es", n, repr(tp.solve_power(nobs=n, power=0.8, alpha=0.05, alternative='two-sided')))
# sign-flip permutation
def mean_diff(x, y, axis): return np.mean(x - y, axis=axis)
for d in [[0.012, 0.004, 0.009], [0.01, -0.002, 0.007, 0.005, 0.011], [0.3, -0.1, 0.2, 0.4, -0.05, 0.25]]:
    d = np.array(d)
    r = st.permutation_test((d, np.zeros_like(d)), mean_diff, permutation_type='samples', n_resamples=np.inf, alternative='two-sided', vectorized=True)
    print("perm", d.tolist(), repr(r.pvalue))
p = [0.01, 0.04, 0.03, 0.005, 0.5]
print("holm", multipletests(p, method='holm')[1].tolist(), multipletests(p, alpha=0.05, method='holm')[0].tolist())
# OLS: 2x2 factorial, 3 seeds, seed blocks
y = np.array([70.1, 70.9, 69.8,  71.0, 71.6, 70.7,  69.5, 70.2, 69.9,  71.9, 72.8, 71.5])
a = np.array([0,0,0, 1,1,1, 0,0,0, 1,1,1])
b = np.array([0,0,0, 0,0,0, 1,1,1, 1,1,1])
s = np.array([0,1,2]*4)
X = np.column_stack([np.ones(12), a, b, a*b, (s==1).astype(float), (s==2).astype(float)])
m = sm.OLS(y, X).fit()
print("ols params", m.params.tolist())
print("ols ci", m.conf_int(0.05).tolist())
print("ols df", m.df_resid)
